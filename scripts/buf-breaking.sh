#!/usr/bin/env bash
# `buf breaking` for the v1 API (buf.yaml: FILE rules) against its first commit and against the
# previous commit: no change since v1 began, and none in the last commit, may break it.
#
#   bash scripts/buf-breaking.sh [buf command...]     # default: buf; CI may pass npx --yes @bufbuild/buf@1.75.0
#
# One deliberate exception (README, API row): issue 20 set the language file options in every
# proto file at once (java_package, java_multiple_files, java_outer_classname, objc_class_prefix,
# swift_prefix), which generated Java/Kotlin/Swift/Objective-C code is named after. Against a
# tree from before that commit, the five rules that keep those options unchanged are excepted:
# they can only hold there by not setting the options. Against any later tree every FILE rule
# applies, so changing or dropping an option once set fails. Wire and source compatibility
# (every other rule) is checked against the first commit all the same.
set -euo pipefail

readonly V1_BASELINE=dc3ccb5d8b32d907b92944a6ae2b5d93aa02f331
readonly OPTION_RULES='"FILE_SAME_JAVA_MULTIPLE_FILES","FILE_SAME_JAVA_OUTER_CLASSNAME","FILE_SAME_JAVA_PACKAGE","FILE_SAME_OBJC_CLASS_PREFIX","FILE_SAME_SWIFT_PREFIX"'
buf=("$@")
((${#buf[@]})) || buf=(buf)
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A new file must set the five options too (no buf lint rule checks that they are present).
missing=()
while IFS= read -r file; do
    for option in java_multiple_files java_outer_classname java_package objc_class_prefix swift_prefix; do
        grep -q "^option $option = " "$file" || missing+=("$file: option $option")
    done
done < <(find proto -name '*.proto' | LC_ALL=C sort)
if ((${#missing[@]})); then
    printf 'missing file option: %s\n' "${missing[@]}" >&2
    echo "every proto file sets them (docs/clients.md#proto-options)" >&2
    exit 1
fi

if ! git cat-file -e "$V1_BASELINE^{commit}" 2>/dev/null || ! git rev-parse -q --verify HEAD~1 >/dev/null; then
    echo "warning: shallow clone, no history to compare the protos against (skipping)"
    exit 0
fi

# Compares the working tree's protos with commit $1.
against() {
    local ref=$1 config=()
    if ! git grep -q '^option java_package' "$ref" -- proto; then
        config=(--config "{\"version\":\"v2\",\"modules\":[{\"path\":\"proto\"}],\"breaking\":{\"use\":[\"FILE\"],\"except\":[$OPTION_RULES]}}")
        echo "against ${ref:0:12} (before the file options: their five rules excepted)"
    else
        echo "against ${ref:0:12}"
    fi
    "${buf[@]}" breaking "${config[@]}" --against ".git#ref=$ref,depth=100000"
}
against "$V1_BASELINE"
against "$(git rev-parse HEAD~1)"
