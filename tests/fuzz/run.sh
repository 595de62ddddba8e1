#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ and runs each for a bounded time (docs/fuzzing.md).
# A crash, a target that does not build, or a target that does not run fails.
#
#   ROLECALL_FUZZ_SECONDS    seconds per target (default 45)
#   ROLECALL_FUZZ_TARGETS    targets to run (default: every one `cargo fuzz list` names)
#   ROLECALL_FUZZ_SANITIZER  none (default), address, ...
#   ROLECALL_FUZZ_DIR        build and work directory (default ~/.cache/rolecall-tools/fuzz-target)
#   ROLECALL_TOOLS           where cargo-fuzz is installed (default ~/.cache/rolecall-tools)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${ROLECALL_FUZZ_SECONDS:-45}
sanitizer=${ROLECALL_FUZZ_SANITIZER:-none}
# Outside the clone, so that a later run on the same machine reuses the dependencies built.
work=${ROLECALL_FUZZ_DIR:-$HOME/.cache/rolecall-tools/fuzz-target}
tools=${ROLECALL_TOOLS:-$HOME/.cache/rolecall-tools}
version=0.13.2

# cargo-fuzz, pinned, installed once per machine outside the repository.
bin=$tools/cargo-fuzz/bin
if ! [ -x "$bin/cargo-fuzz" ] || ! "$bin/cargo-fuzz" --version | grep -qF "$version"; then
    CARGO_TARGET_DIR=$tools/cargo-fuzz-build cargo install cargo-fuzz --version "$version" \
        --locked --root "$tools/cargo-fuzz" --quiet
fi
export PATH=$bin:$PATH
# libFuzzer needs nightly flags; the stable toolchain accepts them with this.
export RUSTC_BOOTSTRAP=1

# fuzz/Cargo.lock is committed: refuse to build with anything it does not pin.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

targets=${ROLECALL_FUZZ_TARGETS:-$(cargo fuzz list)}
start=$(date +%s)
# 16 codegen units (in build and run alike, or run rebuilds): faster to build on two cores,
# a little slower to run.
cargo fuzz build --sanitizer "$sanitizer" --codegen-units 16 --target-dir "$work"
echo "fuzz: built $(echo $targets | wc -w) targets in $(( $(date +%s) - start )) s"

failed=0
for t in $targets; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    log=$work/$t.log
    dict=()
    case $t in
        manifest) dict=(-dict=fuzz/dict/manifest.dict) ;;
        *) dict=(-dict=fuzz/dict/json.dict) ;;
    esac
    # New inputs go to the work corpus; the committed seeds are only read.
    # The binary `cargo fuzz build` made, run directly: `cargo fuzz run` would build rolecall
    # again with other debug settings before every target.
    if "$work/x86_64-unknown-linux-gnu/release/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 "${dict[@]}" -artifact_prefix="$work/artifacts/$t/" \
        "$work/corpus/$t" "fuzz/corpus/$t" \
        >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        echo "fuzz: $t: ${runs:-?} executions in ${seconds} s, no crash"
        if [ -z "$runs" ] || [ "$runs" -eq 0 ]; then
            echo "fuzz: $t ran nothing" >&2
            failed=1
        fi
    else
        failed=1
        echo "fuzz: $t FAILED; the last lines of $log:" >&2
        tail -60 "$log" >&2
        for a in "$work/artifacts/$t"/*; do
            [ -e "$a" ] || continue
            echo "fuzz: $t: crash input $a (base64): $(base64 -w0 "$a" | head -c 4000)" >&2
        done
        echo "fuzz: keep it as fuzz/regressions/$t/<name> (docs/fuzzing.md)" >&2
    fi
done
exit $failed
