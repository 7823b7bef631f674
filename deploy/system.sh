#!/usr/bin/env bash
# Installs the Debian packages leadloop's local stack needs, only those missing:
# Java 17 and Maven (Kafka broker jars), PostgreSQL server, Prometheus with promtool,
# Alertmanager with amtool, Chromium and a CJK font. Needs root (or sudo) only when
# something is missing.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
# The locked-down broker: openssl makes its CA and certificate; deploy/kafka/Acls.java
# runs as a single-file program, which needs the compiler of a JDK.
command -v openssl >/dev/null || need+=(openssl)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v promtool >/dev/null || need+=(prometheus)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
# The review report is looked at in a real headless browser; its Chinese text needs a
# CJK font (in the charts too).
command -v chromium >/dev/null || need+=(chromium)
# (grep -c reads to the end: with pipefail, grep -q's early exit fails fc-list's pipe)
[ "$(fc-list 2>/dev/null | grep -ci "Noto Sans CJK")" -gt 0 ] || need+=(fonts-noto-cjk)
[ ${#need[@]} -eq 0 ] && exit 0
echo "system: installing ${need[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d: the packages would start system daemons on their default ports;
# leadloop runs its own instances on private ports, so keep the system ones off.
pol=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$pol" ]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee "$pol" >/dev/null; $sudo chmod +x "$pol"; created=1; fi
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
[ "$created" = 1 ] && $sudo rm -f "$pol"
exit 0
