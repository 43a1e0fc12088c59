"""Fake torch.cuda.memory: see the package's docstring."""
history = {}


def _record_memory_history(enabled="all", context="all", stacks="all", max_entries=None, **kw):
    from . import _initialized
    history.update(enabled=enabled, context=context, stacks=stacks, max_entries=max_entries, after_init=_initialized)


def _snapshot(device=None, augment_with_fx_traces=False):
    from . import fake_state
    return fake_state["snapshot"]
