"""A restarted live generator continues each ticker from its last stored
price (issue 10, item 5): before, it started again from the reference prices
and a restart of `tickflow run` fired dozens of PRICE_SPIKEs. Here AAPL's last
stored trade is put at 3x its usual price; the next live run must continue
near that price, while a back-dated run (--start) keeps the reference."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402


def first_price(pg, since_id):
    return float(pg.scalar("SELECT price FROM stock_trades WHERE ticker = 'AAPL' AND id > %d "
                           "ORDER BY event_time, id LIMIT 1" % since_id))


def test_continue(c):
    pg = h.Postgres()
    r = h.run(["generate", "--pg-url", pg.url, "--count", "2000", "--tickers", "AAPL,MSFT"])
    c.eq(r.returncode, 0, "history written: " + r.stderr[-300:])
    ref = float(pg.scalar("SELECT avg(price) FROM stock_trades WHERE ticker = 'AAPL'"))
    last = round(ref * 3, 2)
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
           "VALUES ('AAPL', 'NASDAQ', 'BUY', %s, 100, now())" % last)
    mark = int(pg.scalar("SELECT max(id) FROM stock_trades"))
    r = h.run(["generate", "--pg-url", pg.url, "--rate", "200", "--duration", "1", "--tickers", "AAPL,MSFT"])
    c.eq(r.returncode, 0, "live run: " + r.stderr[-300:])
    got = first_price(pg, mark)
    c.check(abs(got / last - 1) < 0.02, "live run continues from the last stored price",
            "first %.4f, last stored %.4f, reference %.4f" % (got, last, ref))
    # a back-dated run is history of its own: it starts from the reference
    mark = int(pg.scalar("SELECT max(id) FROM stock_trades"))
    r = h.run(["generate", "--pg-url", pg.url, "--count", "200", "--tickers", "AAPL",
               "--start", "2026-01-05T14:30:00Z"])
    c.eq(r.returncode, 0, "back-dated run")
    got = first_price(pg, mark)
    c.check(abs(got / ref - 1) < 0.2, "back-dated run starts at the reference",
            "first %.4f, reference %.4f" % (got, ref))


if __name__ == "__main__":
    h.main([test_continue])
