"""Orbax checkpoints in <workdir>/checkpoints: the GANState and the config (JSON) per step.

Saves are asynchronous and atomic (Orbax writes to a temporary folder and renames it); the K
newest are kept. Restore uses an abstract state carrying the target shardings.
"""

import os


class Checkpointer:
    """A thin wrapper over ocp.CheckpointManager with items `state` and `config`."""

    def __init__(self, workdir: str, keep: int = 3, use_async: bool = True):
        import orbax.checkpoint as ocp  # noqa: PLC0415

        self._ocp = ocp
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=use_async)
        self.manager = ocp.CheckpointManager(self.directory, item_names=("state", "config"),
                                             options=options)

    def latest_step(self):
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state, config_dict: dict) -> None:
        """Starts an (async) save of `state` and the config at `step`."""
        args = self._ocp.args
        self.manager.save(step, args=args.Composite(state=args.StandardSave(state),
                                                    config=args.JsonSave(config_dict)), force=True)

    def restore(self, abstract_state, step=None):
        """The state at `step` (default: latest), placed with abstract_state's shardings.

        abstract_state: the abstract GANState (ShapeDtypeStructs with shardings), or a callable
        step -> abstract GANState when the state's shapes depend on the step (staged runs whose
        stages differ in shape, e.g. StyleGAN-XL's growing generator)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}; train first "
                                    "(--mode=train with the same --workdir)")
        abstract = abstract_state(step) if callable(abstract_state) else abstract_state
        args = self._ocp.args
        out = self.manager.restore(step, args=args.Composite(
            state=args.StandardRestore(abstract)))
        return out.state

    def restore_config(self, step=None) -> dict:
        step = self.latest_step() if step is None else step
        args = self._ocp.args
        return self.manager.restore(step, args=args.Composite(config=args.JsonRestore())).config

    def wait(self) -> None:
        """Blocks until pending async saves are committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
