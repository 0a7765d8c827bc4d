"""Writing a driver's section into BENCHMARKS.md (shared by the bench drivers)."""
import os
import re

HEADER = "# Benchmarks\n\nMeasured on the project machine (2 cores, 24 GiB). Each section says how to rerun it.\n\n"


def write_section(root, heading, section):
    """Replace the `## <heading>` section of <root>/BENCHMARKS.md (up to the next `## ` or the
    end) with `section`, or append it when the file has none."""
    bm = os.path.join(root, "BENCHMARKS.md")
    text = open(bm).read() if os.path.exists(bm) else HEADER
    marker = f"## {heading}"
    if marker in text:
        text = re.sub(re.escape(marker) + r"\n.*?(?=\n## |\Z)", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(bm, "w").write(text)
