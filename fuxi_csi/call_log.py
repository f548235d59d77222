"""One log line per CSI call: the method, the volume it is about, how it ended
(with the reason, when it failed) and how long it took (the gRPC analogue of
fuxi's access log)."""

import logging
import time

import grpc

LOG = logging.getLogger("fuxi_csi.calls")
# Fields that say what a call is about; the first one a request has is logged.
SUBJECT_FIELDS = ("volume_id", "name", "snapshot_id", "source_volume_id")
# Asked every few seconds by the liveness probe and kubelet: DEBUG only.
QUIET_METHODS = ("Probe", "GetPluginInfo", "GetPluginCapabilities", "NodeGetCapabilities",
                 "ControllerGetCapabilities")
# Failures of this driver or of the cloud, not of the request: ERROR.
TROUBLE = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
           grpc.StatusCode.UNKNOWN)


def _subject(request) -> str:
    for field in SUBJECT_FIELDS:
        value = getattr(request, field, "")
        if value:
            return f" {field}={value}"
    return ""


class CallLog(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary

        def logged(request, context):
            started = time.monotonic()
            code = grpc.StatusCode.OK
            try:
                return inner(request, context)
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if code == grpc.StatusCode.OK:
                    level, why = (logging.DEBUG if method in QUIET_METHODS else logging.INFO), ""
                else:
                    details = context.details() or b""  # as abort() left it: bytes
                    why = ": " + (details.decode(errors="replace") if isinstance(details, bytes) else details)
                    level = logging.ERROR if code in TROUBLE else logging.INFO
                LOG.log(level, "%s%s: %s in %.3f s%s", method, _subject(request), code.name,
                        time.monotonic() - started, why)

        return grpc.unary_unary_rpc_method_handler(
            logged, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
