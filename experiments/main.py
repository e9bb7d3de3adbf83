"""gan_zoo command line: train, sample or summarise a config.

    python experiments/main.py --config=configs/biggan.py:digits --workdir=/tmp/biggan_digits
    python experiments/main.py --config=configs/biggan.py:digits --workdir=/tmp/biggan_digits \
        --mode=sample --sample_out=/tmp/digits.npz --num_samples=100
    python experiments/main.py --config=configs/biggan.py:digits --workdir=/tmp/biggan_digits \
        --mode=eval --config.eval.metrics=rfid,kid --config.eval.inception=/path/inception.npz
    python experiments/main.py --config=configs/biggan_deep.py:imagenet128 --mode=summary

Overrides: --config.train.batch_size=64 etc. (unknown keys are rejected with the valid ones).

Console: gan_zoo's own lines only (a config summary, one progress line per log step, warnings);
--verbosity=0 or more shows every library's INFO logs and full tracebacks as well.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file and preset, e.g. configs/biggan_deep.py:imagenet128.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard summaries and sample grids.")
flags.DEFINE_enum("mode", "train", ["train", "sample", "eval", "summary"], "What to do; eval: "
                  "config.eval metrics of the latest checkpoint -> <workdir>/eval/*.json.")
flags.DEFINE_string("sample_out", None, "sample: output .npz (default <workdir>/samples.npz).")
flags.DEFINE_integer("num_samples", 1000, "sample: number of images.")
flags.DEFINE_list("labels", None, "sample: class ids (one, or num_samples of them); default: "
                  "spread evenly over the classes.")
flags.DEFINE_string("step", "latest", "sample/eval: the checkpoint: latest, best "
                    "(config.checkpoint.best_metric's) or a step number.")
flags.DEFINE_float("truncation", None, "sample: truncation τ (0 = none); default "
                   "config.sample.truncation.")
flags.mark_flags_as_required(["config"])


def _labels(num: int):
    if not FLAGS.labels:
        return None
    ids = [int(v) for v in FLAGS.labels]
    if len(ids) == 1:
        ids = ids * num
    if len(ids) != num:
        raise app.UsageError(f"--labels: give 1 or --num_samples={num} ids, got {len(ids)}")
    return ids


def _sample(config) -> None:
    import numpy as np  # noqa: PLC0415

    from gan_zoo.train import inference, writers  # noqa: PLC0415

    images, labels = inference.sample(config, FLAGS.workdir, FLAGS.num_samples,
                                      _labels(FLAGS.num_samples), FLAGS.truncation,
                                      step=FLAGS.step)
    out = FLAGS.sample_out or os.path.join(FLAGS.workdir, "samples.npz")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez(out, images=images, labels=labels)
    png = os.path.splitext(out)[0] + ".png"
    writers.save_png(png, writers.image_grid(images[:100].astype(np.float32) / 127.5 - 1.0))
    print(f"wrote {len(images)} samples to {out} and a grid to {png}")


def _eval(config) -> None:
    from gan_zoo.train import inference, writers  # noqa: PLC0415

    writer = writers.make_writer(FLAGS.workdir)
    out = inference.evaluate_checkpoint(config, FLAGS.workdir, writer=writer, step=FLAGS.step)
    writer.flush()
    path = os.path.join(FLAGS.workdir, "eval", f"metrics_{out['step']}.json")
    print(f"step {out['step']}: " + ", ".join(f"{k}={v:.6g}" for k, v in out.items()
                                               if k != "step") + f"\nwrote {path}")


# Errors that name their cause (config field, file, step): one line, no traceback, exit 1.
_CLEAR_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def _setup_console() -> bool:
    """Quiet console unless --verbosity was given: third-party Python loggers and TensorFlow's
    C++ INFO lines off, short line prefixes, Orbax tracebacks of failed saves and the asyncio
    noise after them dropped (gan_zoo reports the failure in one line). Returns whether the
    console is quiet."""
    import logging as pylogging  # noqa: PLC0415

    from gan_zoo.train import progress  # noqa: PLC0415

    if FLAGS["verbosity"].present:
        return False
    progress.quiet_third_party()
    pylogging.getLogger("gan_zoo").setLevel(pylogging.INFO)
    handler = logging.get_absl_handler()
    handler.setFormatter(pylogging.Formatter("%(asctime)s %(levelname).1s %(message)s",
                                             "%H:%M:%S"))
    handler.addFilter(progress.DropReportedTracebacks())
    progress.drop_closed_loop_noise()
    return True


def _train(config, quiet: bool) -> None:
    import logging as pylogging  # noqa: PLC0415

    from gan_zoo import train  # noqa: PLC0415
    from gan_zoo.train import progress, save_watch  # noqa: PLC0415

    pylogging.getLogger("gan_zoo.cli").info("%s", progress.summarize(config, FLAGS.workdir))
    try:
        train.run(config, FLAGS.workdir)
    except (*_CLEAR_ERRORS, save_watch.SaveFailed) as e:
        if not quiet:
            raise
        logging.error("stopped: %s: %s (--verbosity=0 shows the traceback)",
                      type(e).__name__, e)
        sys.exit(1)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    quiet = _setup_console()
    config = FLAGS.config
    if FLAGS.mode == "summary":
        from gan_zoo.train import inference  # noqa: PLC0415

        print(inference.summary(config))
        return
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required for --mode=train, sample and eval")
    if FLAGS.mode == "sample":
        _sample(config)
        return
    if FLAGS.mode == "eval":
        _eval(config)
        return
    _train(config, quiet)


def _parse_flags(argv):
    """absl flag parsing, with a clear error for unknown --config.* keys."""
    try:
        return FLAGS(argv)
    except Exception:
        from configs import common  # noqa: PLC0415

        spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
        if spec:
            try:
                common.check_override_keys(common.load_config_file(spec), argv)
            except ValueError as e:
                sys.exit(f"error: {e}")
        raise


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
