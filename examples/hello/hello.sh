#!/bin/sh
echo "$(cat /app/greeting.txt), ${1:-world}!"
