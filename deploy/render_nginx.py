"""Fill deploy/nginx/attnscope.conf's @NAME@ fields (standard library only; the tests and
bench/classroom.py render it with this too):

    python3 deploy/render_nginx.py --server-name attnscope.school.example > /etc/nginx/conf.d/attnscope.conf
    nginx -t && nginx -s reload
"""

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "attnscope.conf"
DEFAULTS = {"LISTEN": "80", "SERVER_NAME": "localhost", "UPSTREAM": "127.0.0.1:8000",
            "CACHE_DIR": "/var/cache/nginx/attnscope", "ACCESS_LOG": "/var/log/nginx/attnscope.log"}
FIELD = re.compile(r"@([A-Z_]+)@")


def render(**values: str) -> str:
    """The recipe with every @NAME@ replaced (DEFAULTS for those not given); a name it lacks is an error."""
    values = DEFAULTS | {k.upper(): v for k, v in values.items()}
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"the recipe has no field {', '.join(sorted(unknown))}: its fields are {', '.join(DEFAULTS)}")
    word = r"[^;{}'\"#\s]+"
    bad = {k: v for k, v in values.items() if not re.fullmatch(word + (f"( {word})*" if k == "SERVER_NAME" else ""), v)}
    if bad:
        raise ValueError(f"not an nginx value: {bad}")
    lines = []
    for line in TEMPLATE.read_text().splitlines(keepends=True):
        if line.lstrip().startswith("#"):  # the comments name the fields: keep them as written
            lines.append(line)
        else:
            lines.append(FIELD.sub(lambda m: values[m.group(1)], line))
    out = "".join(lines)
    left = {m for line in out.splitlines() if not line.lstrip().startswith("#") for m in FIELD.findall(line)}
    if left:
        raise ValueError(f"fields left unfilled: {left}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in DEFAULTS.items():
        p.add_argument("--" + name.lower().replace("_", "-"), default=default, help=f"@{name}@ (default {default})")
    args = p.parse_args(argv)
    sys.stdout.write(render(**{k: getattr(args, k.lower()) for k in DEFAULTS}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
