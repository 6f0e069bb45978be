#!/usr/bin/env bash
# Makes sure OpenSSL's development files are there: librdkafka is built with TLS and SASL
# against the system OpenSSL (rdkafka's `ssl` feature). Installs libssl-dev with apt-get
# when run as root on Debian; otherwise says what is missing and fails.
if ! pkg-config --exists openssl 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing libssl-dev (OpenSSL headers for librdkafka's TLS)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libssl-dev >/dev/null
  else
    echo "OpenSSL development files are required: apt-get install libssl-dev" >&2
    exit 1
  fi
fi
