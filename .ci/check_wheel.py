"""What a paddle-flashmask wheel may hold: the package and its metadata.

    python .ci/check_wheel.py dist/paddle_flashmask-*.whl

Fails (exit 1, one line per problem) on any entry outside paddle_flashmask/
and paddle_flashmask-<version>.dist-info/ (a build tree, tests, examples), on
object files or build leftovers inside the package, and when the compiled ops,
py.typed or the licence are missing."""
import re
import sys
import zipfile

PACKAGE = "paddle_flashmask/"
DIST_INFO = re.compile(r"paddle_flashmask-[^/]+\.dist-info/")
STRAY = re.compile(r"(\.(o|obj|a|lib|cu|cc|h)$)|(^|/)(build|tests?)/|(^|/)test_[^/]*\.py$")
REQUIRED = ("paddle_flashmask/_flashmask_ops.so", "paddle_flashmask/py.typed")


def problems(names):
    """The reasons a wheel holding the entries `names` must not ship (empty: fine)."""
    found = []
    for name in names:
        if not (name.startswith(PACKAGE) or DIST_INFO.match(name)):
            found.append(f"outside the package: {name}")
        elif STRAY.search(name):
            found.append(f"build or test leftover: {name}")
    for name in REQUIRED:
        if name not in names:
            found.append(f"missing: {name}")
    if not any(DIST_INFO.match(n) and n.rsplit("/", 1)[-1].startswith("LICENSE") for n in names):
        found.append("missing: the LICENSE in the dist-info")
    return found


def main(argv):
    if len(argv) != 1:
        sys.exit("usage: python .ci/check_wheel.py WHEEL")
    with zipfile.ZipFile(argv[0]) as whl:
        names = whl.namelist()
    found = problems(names)
    for line in found:
        print(f"check_wheel: {line}")
    if found:
        sys.exit(1)
    print(f"check_wheel: {argv[0]}: {len(names)} entries, all under {PACKAGE} or its dist-info")


if __name__ == "__main__":
    main(sys.argv[1:])
