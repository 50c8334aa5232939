ARG BASE
FROM $BASE
COPY a/b/c.txt /p/a/b/
COPY x/1.txt x/2.txt /p/x/
COPY a/b /p2/a/b
COPY a/b/c.txt /p3/b/
