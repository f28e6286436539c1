"""`instructmix run|pool|model|probe|select|train|eval|compare|report|schema|testbed|serve|
convert-gguf`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from instructmix.config import ConfigError, json_schema, load_config
from instructmix.pipeline import STAGES

STAGE_NAMES = [s.name for s in STAGES]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="instructmix", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every stage (finished stages are skipped)")
    run.add_argument("--stop-after", choices=STAGE_NAMES)
    for name in STAGE_NAMES:
        s = sub.add_parser(name, help=f"run only the {name} stage")
        s.add_argument("--force", action="store_true", help="re-run even if up to date")
    for name, s in sub.choices.items():
        s.add_argument("config", help="YAML run config")
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set train.epochs=2")
        s.set_defaults(command=name)
    sub.add_parser("schema", help="print the config's JSON schema")
    tb = sub.add_parser("testbed", help="write the testbed's ground truth JSON")
    tb.add_argument("--out", default="-")
    sv = sub.add_parser("serve", help="serve an HF model as an OpenAI-compatible chat endpoint")
    sv.add_argument("model_path", help="HF model folder")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--threads", type=int, default=1, help="torch threads for generation")
    cg = sub.add_parser("convert-gguf", help="dequantise a GGUF causal LM into an HF folder")
    cg.add_argument("gguf_file")
    cg.add_argument("out_dir")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "schema":
        print(json_schema())
        return 0
    if args.command == "serve":
        from instructmix.augment.server import main as serve

        return serve([args.model_path, "--host", args.host, "--port", str(args.port),
                      "--threads", str(args.threads)])
    if args.command == "convert-gguf":
        from instructmix.augment.gguf import gguf_to_hf

        try:
            print(gguf_to_hf(args.gguf_file, args.out_dir))
        except (FileNotFoundError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    if args.command == "testbed":
        from instructmix.data.testbed import ground_truth

        text = json.dumps(ground_truth(), indent=2)
        if args.out == "-":
            print(text)
        else:
            Path(args.out).write_text(text + "\n")
        return 0
    try:
        cfg = load_config(args.config, args.set)
        from instructmix import pipeline

        if args.command == "run":
            pipeline.run_all(cfg, args.stop_after)
            report = Path(cfg.run_dir) / "report" / "report.html"
            if report.is_file() and args.stop_after in (None, "report"):
                print(f"report: {report}")
        else:
            pipeline.run_stage(cfg, pipeline.BY_NAME[args.command], force=args.force)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
