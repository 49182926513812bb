/*
 * cmd.h - the subcommands of the tickflow binary. Each gets the loaded
 * configuration and its positional arguments, returns the process exit code.
 * main.c parses flags/config and dispatches; each command lives in its own
 * cmd_<name>.c.
 */
#ifndef TF_CMD_H
#define TF_CMD_H

#include "common/config.h"

int tf_cmd_migrate(tf_config *cfg, int npos, const char **pos);  /* cmd_migrate.c  */
int tf_cmd_generate(tf_config *cfg, int npos, const char **pos); /* cmd_generate.c */
int tf_cmd_cdc(tf_config *cfg, int npos, const char **pos);      /* cmd_cdc.c      */
int tf_cmd_process(tf_config *cfg, int npos, const char **pos);  /* cmd_process.c  */
int tf_cmd_serve(tf_config *cfg, int npos, const char **pos);    /* cmd_serve.c    */
int tf_cmd_run(tf_config *cfg, int npos, const char **pos);      /* cmd_run.c      */

#endif
