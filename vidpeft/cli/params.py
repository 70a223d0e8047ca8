"""vidpeft-params: how many parameters a method trains on a backbone."""
from __future__ import annotations

import argparse
import json
import sys

import torch

from ..backbones import BACKBONES
from ..errors import UserError
from ..model import build_model, count_parameters, load_pretrained
from .common import Parser, add_method_options, fail, method_help, method_options


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="vidpeft-params",
        description="Print the trainable parameters of BACKBONE with METHOD (excluding the head), "
        "the head's parameters and the total. Builds the model on the meta device: no weights, no memory.")
    parser.add_argument("--backbone", required=True, help=f"one of {', '.join(BACKBONES.names())}")
    parser.add_argument("--method", default="full", help=f"PEFT method (default full). {method_help()}")
    parser.add_argument("--num-classes", type=int, default=174, help="head size (default 174, SSv2)")
    parser.add_argument("--json", action="store_true", help='print {"trainable", "head", "total"} as JSON')
    parser.add_argument("--pretrained", help="also load this checkpoint (a file, a vidpeft run, hf:OWNER/NAME[@REV] "
                        "or timm:MODEL.TAG) and print its load report: builds real weights instead of the meta device")
    add_method_options(parser)
    args = parser.parse_args(argv)
    try:
        with torch.device("cpu" if args.pretrained else "meta"):
            model = build_model(args.backbone, args.method, args.num_classes, **method_options(args))
        report = load_pretrained(model, args.pretrained) if args.pretrained else None
    except UserError as error:
        return fail(error)
    if report is not None and not args.json:
        print(report)
    counts = count_parameters(model)
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"{args.backbone} + {args.method}: trainable {counts['trainable']:,} "
              f"({counts['trainable'] / 1e6:.2f}M) excluding the head; head {counts['head']:,}; "
              f"total {counts['total']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
