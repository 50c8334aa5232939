ARG BASE
FROM $BASE
ENV NAME=world
COPY --chmod=644 ref/plain.txt ref/quoted.txt ref/tabs.txt /h/
COPY --chmod=644 ref/dir/one ref/dir/two /h/dir/
COPY --chmod=755 ref/script.sh /h/
