"""shopsim: realistic anonymous-then-identified shopper event streams, load tests and end-to-end checks."""
