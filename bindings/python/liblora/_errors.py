"""Exceptions: one class per lora_status, all under LoraError."""

__all__ = [
    "LoraError", "LoraInvalidArgumentError", "LoraMemoryError", "LoraIOError",
    "LoraFormatError", "LoraConfigError", "LoraUnsupportedError", "LoraShapeError",
    "LoraRangeError", "LoraStateError", "LoraNumericError", "LoraDeviceError",
    "LoraDeviceMemoryError", "LoraCancelledError", "LoraInternalError",
]


class LoraError(Exception):
    """A liblora call failed (or a handle was used after close()).

    status is the lora_status number, status_name its LORA_ERR_* name and message the text of
    lora_last_error() (it names the function and the file, key, line or shape at fault).
    """

    status = None
    status_name = "LORA_ERR_UNKNOWN"

    def __init__(self, message, status=None, status_name=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if status_name is not None:
            self.status_name = status_name

    __module__ = "liblora"

    def __str__(self):
        return "%s: %s" % (self.status_name, self.message)


def _status_class(name, number, constant, doc):
    return type(name, (LoraError,), {"status": number, "status_name": constant, "__doc__": doc,
                                     "__module__": "liblora"})


# Numbers and names as in include/lora.h (fixed forever, append-only).
LoraInvalidArgumentError = _status_class(
    "LoraInvalidArgumentError", 1, "LORA_ERR_INVALID_ARGUMENT",
    "A NULL pointer, zero size or inconsistent sizes.")
LoraMemoryError = _status_class(
    "LoraMemoryError", 2, "LORA_ERR_OUT_OF_MEMORY", "A host allocation failed.")
LoraIOError = _status_class(
    "LoraIOError", 3, "LORA_ERR_IO", "A file could not be opened, read, written or renamed.")
LoraFormatError = _status_class(
    "LoraFormatError", 4, "LORA_ERR_FORMAT", "A file's content is malformed.")
LoraConfigError = _status_class(
    "LoraConfigError", 5, "LORA_ERR_CONFIG",
    "A configuration key or value is unknown or out of range (the message names the key).")
LoraUnsupportedError = _status_class(
    "LoraUnsupportedError", 6, "LORA_ERR_UNSUPPORTED",
    "Valid input this version does not support, or a function this build lacks.")
LoraShapeError = _status_class(
    "LoraShapeError", 7, "LORA_ERR_SHAPE", "A tensor's shape or dtype disagrees with the config.")
LoraRangeError = _status_class(
    "LoraRangeError", 8, "LORA_ERR_RANGE",
    "A token id or length is out of range, or the context is full.")
LoraStateError = _status_class(
    "LoraStateError", 9, "LORA_ERR_STATE",
    "The handle is not in a state that allows the call (also: a closed handle).")
LoraNumericError = _status_class(
    "LoraNumericError", 10, "LORA_ERR_NUMERIC", "A non-finite value where a finite one is required.")
LoraDeviceError = _status_class(
    "LoraDeviceError", 11, "LORA_ERR_DEVICE", "An accelerator is missing or failed.")
LoraDeviceMemoryError = _status_class(
    "LoraDeviceMemoryError", 12, "LORA_ERR_DEVICE_OUT_OF_MEMORY", "Accelerator allocation failed.")
LoraCancelledError = _status_class(
    "LoraCancelledError", 13, "LORA_ERR_CANCELLED", "A callback asked to stop.")
LoraInternalError = _status_class(
    "LoraInternalError", 14, "LORA_ERR_INTERNAL", "A bug in liblora; please report it.")

_BY_STATUS = {cls.status: cls for cls in (
    LoraInvalidArgumentError, LoraMemoryError, LoraIOError, LoraFormatError, LoraConfigError,
    LoraUnsupportedError, LoraShapeError, LoraRangeError, LoraStateError, LoraNumericError,
    LoraDeviceError, LoraDeviceMemoryError, LoraCancelledError, LoraInternalError)}


def error_for(status, message, status_name=None):
    """The exception for a status number; LoraError itself for numbers this version lacks."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        return LoraError(message, status, status_name or "LORA_ERR_UNKNOWN")
    return cls(message)
