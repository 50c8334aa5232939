ARG BASE
FROM $BASE
RUN echo one > /h1 && echo two >> /h1
RUN echo shebang > /h2
RUN echo 'text 3' > /h3 && echo more > /h4
