"""A passthrough FUSE file system (fusepy) for tests/test_fuse.py: every call goes through
the kernel's FUSE layer and a user-space process, as on a network or FUSE mount, to the
directory given. Locks are the kernel's (the file system implements none), as on a FUSE mount
without lock support.

    python tests/fs/passthrough.py ROOT MOUNTPOINT
"""

import errno
import os
import sys

from fuse import FUSE, FuseOSError, Operations


class Passthrough(Operations):  # type: ignore[misc]
    def __init__(self, root):
        self.root = root

    def _p(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def access(self, p, mode):
        if not os.access(self._p(p), mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, p, fh=None):
        st = os.lstat(self._p(p))
        return {
            k: getattr(st, k)
            for k in (
                "st_atime",
                "st_ctime",
                "st_gid",
                "st_mode",
                "st_mtime",
                "st_nlink",
                "st_size",
                "st_uid",
            )
        }

    def readdir(self, p, fh):
        return [".", "..", *os.listdir(self._p(p))]

    def mkdir(self, p, mode):
        os.mkdir(self._p(p), mode)

    def rmdir(self, p):
        os.rmdir(self._p(p))

    def unlink(self, p):
        os.unlink(self._p(p))

    def rename(self, a, b):
        os.rename(self._p(a), self._p(b))

    def link(self, t, n):
        os.link(self._p(n), self._p(t))

    def truncate(self, p, length, fh=None):
        os.truncate(self._p(p), length)

    def open(self, p, flags):
        return os.open(self._p(p), flags)

    def create(self, p, mode, fi=None):
        return os.open(self._p(p), os.O_RDWR | os.O_CREAT, mode)

    def read(self, p, size, off, fh):
        return os.pread(fh, size, off)

    def write(self, p, data, off, fh):
        return os.pwrite(fh, data, off)

    def flush(self, p, fh):
        return 0

    def release(self, p, fh):
        return os.close(fh)

    def fsync(self, p, ds, fh):
        return os.fsync(fh)

    def statfs(self, p):
        s = os.statvfs(self._p(p))
        return {
            k: getattr(s, k)
            for k in (
                "f_bavail",
                "f_bfree",
                "f_blocks",
                "f_bsize",
                "f_favail",
                "f_ffree",
                "f_files",
                "f_flag",
                "f_frsize",
                "f_namemax",
            )
        }

    def utimens(self, p, times=None):
        os.utime(self._p(p), times)

    def chmod(self, p, mode):
        os.chmod(self._p(p), mode)


if __name__ == "__main__":
    FUSE(Passthrough(sys.argv[1]), sys.argv[2], foreground=True, nothreads=False)
