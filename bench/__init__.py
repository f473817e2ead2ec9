"""`python -m bench`: Mailferry's whole path (SMTP in, spool, RQ, worker, DKIM, SRS, SMTP out) against Postfix.

Everything runs on loopback: a destination MX (Postfix's smtp-sink, or our counting sink when arrival times are
needed), the loopback limit (smtp-source straight into smtp-sink), a private Postfix instance as a plain forwarder,
and Mailferry itself with its own Redis, database and DNS server.
"""
