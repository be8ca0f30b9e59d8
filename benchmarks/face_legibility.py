"""Why a face generator's images fail the teacher's face check, and where they pass it.

    python benchmarks/face_legibility.py --run RUN --data lfw:ROOT [--crop F] [--seed S]

RUN is a run folder of ``benchmarks/generator.py --data lfw:ROOT --run RUN`` (or of
``outpool train-generator`` on LFW): its ``generator.pt`` and ``teacher/teacher.pt``. Give the
same ``--crop`` and ``--seed`` as that run (the seed picks LFW's person splits, so the test faces
are ones the generator never saw).

For four sets of images it prints the share the check accepts, the share beyond its face-space
distance bound ("far": not a face) and the share below its detail bound ("blurred": eyes, mouth
and outline too faint), and the median detail:
- ``random_samples``: the benchmark's random samples (each strength drawn independently);
- ``samples_at_test_strengths``: random latents at the test faces' true strengths (combinations
  real faces have);
- ``test_reconstructions``: the test faces through the encoder and decoder;
- ``test_faces``: the real test faces themselves.

Prints one JSON object as the last line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from outpool.bench import emit, log, machine, parser
from outpool.data.sources.lfw import load_lfw
from outpool.judges.face_space import FaceSpace
from outpool.judges.generator_check import random_inputs, to_uint8
from outpool.judges.teacher import TeacherJudge
from outpool.models.tensors import to_tensor
from outpool.train.generator import load_generator


def verdicts(face_space: FaceSpace, images: np.ndarray) -> dict[str, float | int]:
    """Accepted / far / blurred shares (%) of uint8 images and their median detail."""
    distance, detail = face_space.features(images)
    far = distance > face_space.distance_max
    blurred = detail < face_space.detail_min
    legible = face_space.legibility(images) >= 0.5
    return {
        "images": len(images),
        "legible_pct": round(100.0 * float(legible.mean()), 2),
        "far_pct": round(100.0 * float(far.mean()), 2),
        "blurred_pct": round(100.0 * float(blurred.mean()), 2),
        "detail_median": round(float(np.median(detail)), 3),
    }


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--run", type=Path, required=True, help="the generator's run folder")
    p.add_argument("--data", required=True, help="lfw:ROOT (LFW in its official layout)")
    p.add_argument("--crop", type=float, default=1.0, help="the run's --crop")
    p.add_argument("--samples", type=int, default=2048, help="random samples to judge")
    args = p.parse_args()
    if not args.data.startswith("lfw:"):
        p.error(f"--data must be lfw:ROOT, got {args.data!r}")
    if not 0.0 < args.crop <= 1.0:
        p.error(f"--crop must be a fraction in (0, 1] of the frame, got {args.crop}")
    if args.samples < 1:
        p.error(f"--samples must be at least 1, got {args.samples}")
    for need in (args.run / "generator.pt", args.run / "teacher" / "teacher.pt"):
        if not need.is_file():
            p.error(f"{need} does not exist: --run must be a face generator's run folder")
    model = load_generator(args.run / "generator.pt")
    model.eval()
    face_space = TeacherJudge.load(args.run / "teacher" / "teacher.pt").face_space
    root = Path(args.data.partition(":")[2])
    log(f"loading LFW from {root} ...")
    dataset, truth = load_lfw(root, seed=args.seed, crop=args.crop)
    ids, scores = truth["test"]
    faces = np.asarray(dataset.lookup(ids))
    y_test = torch.from_numpy(np.asarray(scores, np.float32))
    result: dict[str, object] = {
        "benchmark": "face_legibility",
        "machine": machine(),
        "generator": str(args.run / "generator.pt"),
        "crop": args.crop,
        "distance_max": round(face_space.distance_max, 3),
        "detail_min": round(face_space.detail_min, 3),
    }
    with torch.no_grad():
        y, u = random_inputs(model, args.samples, args.seed + 1)
        result["random_samples"] = verdicts(face_space, to_uint8(model.sample(y, u)))
        _, u_test = random_inputs(model, len(faces), args.seed + 2)
        at_test = to_uint8(model.sample(y_test, u_test))
        result["samples_at_test_strengths"] = verdicts(face_space, at_test)
        recon = to_uint8(model.reconstruct(to_tensor(faces, "cpu"), y_test))
        result["test_reconstructions"] = verdicts(face_space, recon)
    result["test_faces"] = verdicts(face_space, faces)
    emit(result, args.out)


if __name__ == "__main__":
    main()
