"""benchmarks/RESULTS.md is one file with a section per benchmark script;
each script replaces only its own section, so reruns never clobber the rest."""
import os
import platform

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
HEADER = ("# Benchmark results\n\nEach section is written by the script it names "
          "(`benchmarks/*.py`): date, machine, command, table.\n")


def machine():
    """'<cpu>, <n> cores' for a table's header line."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def update_section(name, markdown, path=RESULTS):
    """Replace (or append) the section between the markers for `name`."""
    begin, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    text = open(path).read() if os.path.exists(path) else HEADER
    block = f"{begin}\n{markdown.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":  # merge a section produced elsewhere (e.g. on the device machine)
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/results.py SECTION_NAME MARKDOWN_FILE")
    update_section(sys.argv[1], open(sys.argv[2]).read())
