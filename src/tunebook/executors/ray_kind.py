"""``--executor ray``: its checks and its opener. Ray itself is imported only on opening
(:mod:`.raycluster`, ``pip install 'tunebook[ray]'``), so naming this kind costs nothing."""

from __future__ import annotations

from ..errors import SpecError
from .common import RAY_INSTALL, default_workers, group_resources
from .contract import Kind


def _check(opts, device: str, pruning: bool) -> list[str]:
    problems = []
    try:
        import ray  # noqa: F401
    except ImportError:
        problems.append(f"--executor ray: Ray is not installed; install it with {RAY_INSTALL}")
    if isinstance(device, str) and device.startswith("cuda:"):
        problems.append(f"--device {device}: with --executor ray, Ray gives each group its GPU; "
                        "use --device cuda (or auto)")
    return problems


def _open(opts, device: str, data_dir):
    from . import raycluster
    from .dispatch import RemoteExecutor

    owned, resources = raycluster.connect(opts.ray_address)
    try:
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if device == "cuda" and not gpus:
            raise SpecError([f"--device cuda: the Ray cluster has no GPUs (resources: {cpus} CPUs)"])
        kind = "cuda" if (device in ("auto", "cuda") and gpus) else "cpu"
        workers = opts.workers or default_workers(kind, gpus, cpus)
        threads = max(1, cpus // workers)
        per_gpu = max(1, -(-workers // max(1, gpus)))

        probe_share = per_gpu if kind == "cuda" else workers
        backend = raycluster.RayBackend(kind, workers, data_dir, opts.retries, owned)
        smallest = group_resources(None, kind, threads, per_gpu, 1).options()
        plan, _ = backend.probe(smallest, probe_share, calibrate=False, threads=threads)
        gpu_bytes = plan.memory * probe_share  # the memory budget of a whole GPU
        backend.resources = lambda group: group_resources(group, kind, threads, per_gpu, gpu_bytes).options()
        return RemoteExecutor("ray", backend, plan, opts.retries,
                              measure=lambda: backend.probe(smallest, probe_share, calibrate=True, threads=threads)[1])
    except BaseException:
        if owned:
            import ray
            ray.shutdown()
        raise


KIND = Kind("ray", "Ray tasks: a local instance, or a cluster (--ray-address)", _check, _open)
