#!/bin/bash
# Describe the machine and the run as `key: value` lines for the report.
OUT=$1
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd pkg bench || echo ' (with uncommitted changes)')"
echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), shared with other jobs"
echo "memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
echo "kernel: $(uname -sr)"
d=$(df --output=source "$PWD" | tail -1); fs=$(df --output=fstype "$PWD" | tail -1)
# What a directory fsync costs depends on these: with a journal it is a
# journal commit; with a volatile write cache every fsync ends in a flush.
journal=""
if [ "$fs" = ext4 ]; then
  journal=" without a journal"; ls -d /proc/fs/jbd2/"$(basename "$d")"-* >/dev/null 2>&1 && journal=" with a journal"
fi
cache=$(cat /sys/block/"$(basename "$d")"/queue/write_cache 2>/dev/null)
echo "backing filesystem: $fs$journal on $d ($(lsblk -dno SIZE "$d" 2>/dev/null | xargs) disk${cache:+, write cache: $cache}), every server's directory under build/"
echo "go: $(go version | cut -d' ' -f3)"
echo "ganesha: $(dpkg-query -W -f '${Version}' nfs-ganesha 2>/dev/null), VFS FSAL"
echo "go-nfs: $(grep -o 'willscott/go-nfs v[0-9.]*' build/gonfs-mod/go.mod | head -1 | cut -d' ' -f2) example/osnfs (CachingHandler, 1024 handles)"
[ -f "$OUT/start" ] && echo "wall time of bench/run.sh + bench-quota: $(( $(date -u +%s) - $(cat $OUT/start) )) s"
echo "bench-quota (WRITE quota on ÷ off): $(grep -o 'ratio [0-9.]*' build/bench-quota.txt 2>/dev/null | head -1 | cut -d' ' -f2)"
