#!/usr/bin/env python3
"""Lock helper for the lock tests: one process per lock owner, as applications would be.

    locker.py hold  PATH posix|flock r|w START LEN   lock (waiting), print "held T", then
                                                     unlock when stdin closes: "released T"
                                                     (T taken just before the unlock)
    locker.py wait  PATH posix|flock r|w START LEN   lock (waiting): "granted T", then exit
    locker.py try   PATH posix|flock r|w START LEN   lock without waiting: "ok" or "EAGAIN"
    locker.py test  PATH r|w START LEN               F_GETLK: "free" or "held TYPE PID"
    locker.py alarm PATH r|w START LEN SECS          F_SETLKW interrupted by SIGALRM: "EINTR"
    locker.py holdio PATH                            write-lock the file: "held"; on each stdin
                                                     line write a byte and fsync: "ok" or the
                                                     errno name
    locker.py cycle PATH1 PATH2                      lock PATH1, then wait for PATH2:
                                                     "EDEADLK" or "granted"
T is time.time(). Exit status 0 unless something unexpected happened.
"""
import errno
import fcntl
import os
import signal
import struct
import sys
import time


def kind(k):
    return fcntl.F_RDLCK if k == "r" else fcntl.F_WRLCK


def flock_op(k):
    return fcntl.LOCK_SH if k == "r" else fcntl.LOCK_EX


def lock(f, style, k, start, length, wait):
    if style == "flock":
        fcntl.flock(f, flock_op(k) | (0 if wait else fcntl.LOCK_NB))
    else:
        fcntl.lockf(f, (fcntl.LOCK_SH if k == "r" else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB),
                    length, start, 0)


def say(*words):
    print(*words, flush=True)


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "cycle":
        a = open(path, "r+")
        b = open(sys.argv[3], "r+")
        fcntl.lockf(a, fcntl.LOCK_EX)
        say("first")
        sys.stdin.readline()  # the other process holds its first lock now
        try:
            fcntl.lockf(b, fcntl.LOCK_EX)
            say("granted")
        except OSError as e:
            say(errno.errorcode[e.errno])
        sys.stdin.readline()
        return
    f = open(path, "r+")
    if cmd == "holdio":
        fcntl.lockf(f, fcntl.LOCK_EX)
        say("held")
        for _ in sys.stdin:
            try:
                os.pwrite(f.fileno(), b"x", 0)
                os.fsync(f.fileno())
                say("ok")
            except OSError as e:
                say(errno.errorcode[e.errno])
        return
    if cmd == "test":
        k, start, length = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        arg = struct.pack("hhqqi", kind(k), os.SEEK_SET, start, length, 0)
        out = fcntl.fcntl(f, fcntl.F_GETLK, arg)
        typ, _, _, _, pid = struct.unpack("hhqqi", out)
        say("free" if typ == fcntl.F_UNLCK else f"held {'r' if typ == fcntl.F_RDLCK else 'w'} {pid}")
        return
    style, k, start, length = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    if cmd == "try":
        try:
            lock(f, style, k, start, length, False)
            say("ok")
        except OSError as e:
            say(errno.errorcode[e.errno])
        return
    if cmd == "alarm":
        class Alarm(Exception):
            pass

        def ring(*_):
            raise Alarm()

        signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, float(sys.argv[7]))
        t0 = time.time()
        try:
            lock(f, style, k, start, length, True)
            say("granted")
        except Alarm:
            say("EINTR", f"{time.time() - t0:.3f}")
        return
    lock(f, style, k, start, length, True)
    say("held" if cmd == "hold" else "granted", repr(time.time()))
    if cmd == "hold":
        sys.stdin.read()
        t = time.time()
        if style == "flock":
            fcntl.flock(f, fcntl.LOCK_UN)
        else:
            fcntl.lockf(f, fcntl.LOCK_UN, length, start, 0)
        say("released", repr(t))


if __name__ == "__main__":
    main()
