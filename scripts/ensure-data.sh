#!/usr/bin/env bash
# Make sure Fashion-MNIST is on this machine: Debian's dataset-fashion-mnist through apt when apt is
# usable, otherwise say how to get it. With --optional, a missing dataset is a warning (the unit tests
# run without it; the integration tests are then skipped).
set -u
debian=/usr/share/datasets/fashion-mnist
cache="${KERAS_HOME:-$HOME/.keras}/datasets/fashion-mnist"
have() { [ -f "$1/train-images-idx3-ubyte.gz" ] && [ -f "$1/t10k-labels-idx1-ubyte.gz" ]; }

if { [ -n "${FMNIST_DATA_DIR:-}" ] && have "$FMNIST_DATA_DIR"; } || have "$debian" || have "$cache"; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && sudo="sudo -n"; }
    if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
        echo "installing Debian's dataset-fashion-mnist (apt-get)…"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
        have "$debian" && exit 0
    fi
fi
cat >&2 <<MSG
Fashion-MNIST is not installed. Get it one of these ways:
  sudo apt-get install dataset-fashion-mnist      (Debian/Ubuntu)
  .venv/bin/fmnist data download                   (needs internet; into $cache)
  export FMNIST_DATA_DIR=/folder/with/the/four/.gz/files
MSG
[ "${1:-}" = "--optional" ] && exit 0
exit 1
