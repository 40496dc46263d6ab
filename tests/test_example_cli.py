"""What the op-level examples print: the whole description in --help, a progress
line per step in cp_sft.py, numbers without float noise in the packed demo."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_help_shows_the_whole_description():
    for script in ("cp_sft.py", "packed_attention_demo.py"):
        out, _ = run(script, "--help")
        description = out.split("\n\n")[1]  # after the usage lines
        assert description.rstrip().endswith("."), f"{script} --help stops mid-sentence: {description!r}"


def test_cp_sft_shows_progress_per_step():
    out, _ = run("cp_sft.py", "--cp_degree", "1", "--max_steps", "3", "--max_seq_len", "128")
    steps = re.findall(r"step (\d)/3 loss \d+\.\d{4} \| [\d,]+ tokens/s", out)
    assert steps == ["1", "2", "3"], out[-2000:]


def test_packed_demo_prints_rounded_numbers():
    out, _ = run("packed_attention_demo.py", "--seqlen", "128", "--docs", "3")
    sample = out.split("out[0, :3, 0, :4] =")[1]
    numbers = re.findall(r"-?\d+\.\d+", sample)
    assert len(numbers) == 12 and all(len(n.split(".")[1]) == 4 for n in numbers), sample
