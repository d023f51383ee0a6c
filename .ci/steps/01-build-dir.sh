# shellcheck shell=bash
# build directory
mkdir -p "$CARGO_TARGET_DIR"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
cargo --version
rustc --version
