ARG BASE
FROM $BASE
RUN echo lo > /ifaces-none
RUN test -e /sys/class/net/lo && echo host > /net-host
RUN grep -q localhost /etc/hosts && echo ok > /hosts-ok
