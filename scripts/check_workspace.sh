#!/usr/bin/env bash
# Checks WORKSPACE and BUILD.bazel without downloading anything: every repository the
# WORKSPACE loads macros from is replaced (--override_repository) by a stub whose macros
# do nothing, so Bazel parses and evaluates the WORKSPACE in full (each load, each macro
# call with its arguments) and `bazel query` resolves //:benchmark_model to TensorFlow's
# target. What the stubs stand for (TensorFlow 2.21's own macros, the NDK toolchain, the
# build itself) is not checked here. Needs `bazel` on PATH (Debian's bazel-bootstrap 4.2
# does; the project's .bazelrc is for Bazel 7 and is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's `bazel` wrapper insists on .bazelversion's release; its bazel-4 binary does not.
BAZEL=${BAZEL:-$(command -v bazel-4 || command -v bazel || true)}
[ -n "$BAZEL" ] || { echo "error: bazel is not on PATH (BAZEL=/path/to/bazel)" >&2; exit 2; }
stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
stub() {  # stub REPO FILE MACRO...: FILE in REPO defines each MACRO(**kwargs) as a no-op
  local repo=$1 file=$2; shift 2
  mkdir -p "$stubs/$repo/$(dirname "$file")"
  touch "$stubs/$repo/WORKSPACE" "$stubs/$repo/$(dirname "$file")/BUILD"
  for m in "$@"; do printf 'def %s(**kwargs):\n    pass\n' "$m"; done >> "$stubs/$repo/$file"
}
defines() {  # defines REPO FILE MACRO NEW_REPO: MACRO defines NEW_REPO (a stub), as the real one
  local repo=$1 file=$2 macro=$3 new=$4
  mkdir -p "$stubs/$repo/$(dirname "$file")" "$stubs/$new"
  touch "$stubs/$repo/WORKSPACE" "$stubs/$repo/$(dirname "$file")/BUILD" \
      "$stubs/$new/WORKSPACE" "$stubs/$new/BUILD"
  printf 'def %s(**kwargs):\n    native.local_repository(name = "%s", path = "%s")\n' \
      "$macro" "$new" "$stubs/$new" >> "$stubs/$repo/$file"
}
for n in 0 1 2 3; do stub org_tensorflow tensorflow/workspace$n.bzl tf_workspace$n; done
for m in rules repositories toolchains; do
  stub org_tensorflow third_party/py/python_init_$m.bzl python_init_$m
done
defines org_tensorflow third_party/py/python_init_pip.bzl python_init_pip pypi
mkdir -p "$stubs/org_tensorflow/tensorflow/lite/tools/benchmark"
echo 'filegroup(name = "benchmark_model", visibility = ["//visibility:public"])' \
    > "$stubs/org_tensorflow/tensorflow/lite/tools/benchmark/BUILD"
stub rules_ml_toolchain cc/deps/cc_toolchain_deps.bzl cc_toolchain_deps
defines rules_ml_toolchain gpu/cuda/cuda_json_init_repository.bzl cuda_json_init_repository \
    cuda_redist_json
stub rules_ml_toolchain gpu/cuda/cuda_redist_init_repositories.bzl \
    cuda_redist_init_repositories cudnn_redist_init_repository
stub rules_ml_toolchain gpu/cuda/cuda_configure.bzl cuda_configure
stub rules_ml_toolchain gpu/nccl/nccl_redist_init_repository.bzl nccl_redist_init_repository
stub rules_ml_toolchain gpu/nccl/nccl_configure.bzl nccl_configure
stub pypi requirements.bzl install_deps
printf 'CUDA_REDISTRIBUTIONS = {}\nCUDNN_REDISTRIBUTIONS = {}\n' \
    > "$stubs/cuda_redist_json/distributions.bzl"
overrides=()
for r in org_tensorflow rules_ml_toolchain; do
  overrides+=("--override_repository=$r=$stubs/$r")
done
out=$("$BAZEL" --batch --noworkspace_rc --output_user_root="$stubs/.bazel" query \
      "${overrides[@]}" //:benchmark_model --output=build 2>"$stubs/log") || {
  cat "$stubs/log" >&2; exit 1; }
echo "$out"
grep -q 'actual = "@org_tensorflow//tensorflow/lite/tools/benchmark:benchmark_model"' <<<"$out"
echo "ok: WORKSPACE evaluated in full (stubbed macros), //:benchmark_model resolves"
