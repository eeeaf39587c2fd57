"""The base of every class that owns a C handle."""

from ._errors import LoraStateError
from ._lib import closed_error


class Handle:
    """Owns one reference to a C handle and drops it once: in close(), on leaving a `with`
    block, or when garbage-collected. The C library keeps parents alive (a session keeps its
    model, an optimizer its session...), so these objects may be closed in any order.

    A handle in use by a running stream is marked busy; close() then waits for the stream to
    end before freeing it.
    """

    _free_name = None
    _ptr = None
    _busy = 0
    _close_pending = False

    def _own(self, lib, ptr):
        self._free = getattr(lib, self._free_name)
        self._ptr = ptr

    def _h(self, what=None):
        """The C pointer, for a call named `what`; raises LoraStateError if closed."""
        if not self._ptr or self._close_pending:
            raise closed_error(what or type(self).__name__)
        if self._busy:
            raise LoraStateError("%s: a stream is running over this %s; finish or close it "
                                 "first" % (what or type(self).__name__,
                                            type(self).__name__.lower()))
        return self._ptr

    @property
    def closed(self):
        return not self._ptr or self._close_pending

    def close(self):
        if self._busy:
            self._close_pending = True
            return
        ptr, self._ptr = self._ptr, None
        if ptr:
            self._free(ptr)

    def _acquire(self):
        self._busy += 1

    def _release(self):
        self._busy -= 1
        if not self._busy and self._close_pending:
            self._close_pending = False
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing more can be done
            pass

    def __repr__(self):
        return "<liblora.%s%s>" % (type(self).__name__, " closed" if self.closed else "")
