ARG BASE
FROM $BASE
COPY a.txt /linked/
COPY --chmod=600 dir /linked/dir
COPY a.txt /new/deep/path/file
