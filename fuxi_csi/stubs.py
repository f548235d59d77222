"""The CSI messages and services, generated from proto/csi.proto (CSI v1.12.0)
by setup.py when the package is built; they are not kept in the repository."""

try:
    from fuxi_csi.proto import csi_pb2 as csi
    from fuxi_csi.proto import csi_pb2_grpc as csi_grpc
except ImportError as exc:  # a source tree that was never built
    raise ImportError(
        "fuxi_csi's gRPC stubs are missing: they are generated from fuxi_csi/proto/csi.proto when the "
        "package is built; install it (pip install . or pip install -e .) first"
    ) from exc

__all__ = ["csi", "csi_grpc"]
