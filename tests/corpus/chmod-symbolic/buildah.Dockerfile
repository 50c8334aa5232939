ARG BASE
FROM $BASE
COPY --chmod=744 a.txt /s/u+x
COPY --chmod=600 a.txt /s/go-r
COPY --chmod=444 a.txt /s/a=r
COPY --chmod=750 a.txt /s/list
