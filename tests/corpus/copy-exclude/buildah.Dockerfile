ARG BASE
FROM $BASE
COPY src/keep.txt src/top.log /e/
COPY src/docs /e/docs
COPY src/lib /e/lib
COPY src/keep.txt src/README.md /e2/
COPY src/tmp /e2/tmp
COPY src/docs /e2/docs
COPY src/lib/code.c /e2/lib/
