/*
 * xen-standin.so: lets Xen's xenstored (C) and oxenstored run on a machine with no
 * hypervisor, serving only their Unix socket.  Loaded with LD_PRELOAD; written from the
 * declarations of Xen's public headers (xenctrl.h, xengnttab.h, xenevtchn.h, Debian's
 * libxen-dev).
 *
 * What the daemons ask of Xen at start-up and when a domain is introduced, and what
 * they get here:
 *
 *   xc_interface_open / _close       a handle that does nothing
 *   xc_domain_getinfo                the domains listed in $XSD_STANDIN_DOMAINS exist
 *                                    ("all", the default: every domid; or a list such as
 *                                    "0,3,7"); none is dying or shut down
 *   xengnttab_*                      a guest's ring page is a fresh anonymous page
 *   xenevtchn_*                      ports are numbers handed out in turn; the handle's
 *                                    descriptor is an eventfd that never becomes readable
 *                                    (kept across exec with XENEVTCHN_NO_CLOEXEC)
 *   open("/proc/xen/xsd_port")       a memfd holding "1": domain 0's port
 *   open("/proc/xen/xsd_kva")        a memfd one page long: domain 0's ring page
 *   setrlimit                        a limit above the hard one is clamped to it, so an
 *                                    unprivileged or containerised start does not fail
 *
 * Nothing is ever signalled: every client of such a daemon comes through its Unix socket
 * and is privileged domain 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

struct xc_interface_core { int unused; };
struct xengntdev_handle { int unused; };
struct xenevtchn_handle { int fd; };

static struct xc_interface_core the_xc;
static struct xengntdev_handle the_gnttab;
static evtchn_port_t last_port = 1; /* 1 is domain 0's (xsd_port) */

/* ---- which domains exist ------------------------------------------------------ */

static int listed(uint32_t domid)
{
    const char *spec = getenv("XSD_STANDIN_DOMAINS");
    if (spec == NULL || *spec == '\0' || strcmp(spec, "all") == 0)
        return 1;
    for (const char *p = spec; *p != '\0';) {
        char *end;
        unsigned long n = strtoul(p, &end, 10);
        if (end == p)
            return 0; /* not a list of numbers: nothing exists */
        if (n == domid)
            return 1;
        p = (*end == ',') ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            return 0;
    }
    return 0;
}

xc_interface *xc_interface_open(xentoollog_logger *logger,
                                xentoollog_logger *dombuild_logger, unsigned open_flags)
{
    (void)logger; (void)dombuild_logger; (void)open_flags;
    return &the_xc;
}

int xc_interface_close(xc_interface *xch)
{
    (void)xch;
    return 0;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms,
                      xc_dominfo_t *info)
{
    unsigned int found = 0;
    (void)xch;
    /* DOMID_FIRST_RESERVED (0x7ff0) ends the ordinary domids. */
    for (uint32_t domid = first_domid; domid < 0x7ff0 && found < max_doms; domid++) {
        if (!listed(domid))
            continue;
        memset(&info[found], 0, sizeof(info[found]));
        info[found].domid = domid;
        info[found].running = 1;
        info[found].xenstore = domid == 0;
        info[found].nr_online_vcpus = 1;
        found++;
    }
    return (int)found;
}

/* ---- grant tables: a guest's ring page ---------------------------------------- */

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger; (void)open_flags;
    return &the_gnttab;
}

int xengnttab_close(xengnttab_handle *xgt)
{
    (void)xgt;
    return 0;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    (void)xgt; (void)nr_grants;
    return 0;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    (void)xgt; (void)domid; (void)ref;
    void *page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), prot | PROT_READ,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return page == MAP_FAILED ? NULL : page;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    return munmap(start_address, (size_t)count * (size_t)sysconf(_SC_PAGESIZE));
}

/* ---- event channels: ports that are never signalled ---------------------------- */

static xenevtchn_handle *evtchn_handle(int fd, unsigned open_flags)
{
    xenevtchn_handle *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    /* XENEVTCHN_NO_CLOEXEC: the descriptor must survive exec (C xenstored's live
     * update hands it to the new program, which takes it back with _fdopen). */
    int cloexec = (open_flags & XENEVTCHN_NO_CLOEXEC) ? 0 : EFD_CLOEXEC;
    h->fd = fd >= 0 ? fd : eventfd(0, cloexec | EFD_NONBLOCK);
    if (h->fd < 0) {
        free(h);
        return NULL;
    }
    return h;
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger;
    return evtchn_handle(-1, open_flags);
}

/* Used after a live update: the descriptor the old process handed over. */
xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd,
                                   unsigned open_flags)
{
    (void)logger;
    return evtchn_handle(fd, open_flags);
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    if (xce != NULL) {
        close(xce->fd);
        free(xce);
    }
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->fd;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    (void)xce; (void)domid; (void)remote_port;
    return (xenevtchn_port_or_error_t)++last_port;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    (void)xce; (void)virq;
    return (xenevtchn_port_or_error_t)++last_port;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    (void)xce;
    errno = EAGAIN;
    return -1;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

/* ---- /proc/xen: domain 0's port and ring page ------------------------------------ */

static int proc_xen(const char *path)
{
    int fd;
    if (strcmp(path, "/proc/xen/xsd_port") == 0) {
        fd = memfd_create("xsd_port", MFD_CLOEXEC);
        if (fd >= 0 && (write(fd, "1\n", 2) != 2 || lseek(fd, 0, SEEK_SET) != 0)) {
            close(fd);
            return -1;
        }
        return fd;
    }
    if (strcmp(path, "/proc/xen/xsd_kva") == 0) {
        fd = memfd_create("xsd_kva", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, sysconf(_SC_PAGESIZE)) != 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
    return -2; /* not ours */
}

typedef int (*open_fn)(const char *, int, ...);

static int forward_open(const char *name, const char *path, int flags, va_list ap)
{
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
    int fd = proc_xen(path);
    if (fd != -2)
        return fd;
    open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int fd = forward_open("open", path, flags, ap);
    va_end(ap);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int fd = forward_open("open64", path, flags, ap);
    va_end(ap);
    return fd;
}

/* ---- resource limits ------------------------------------------------------------ */

typedef int (*setrlimit_fn)(__rlimit_resource_t, const struct rlimit *);

int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim)
{
    setrlimit_fn real = (setrlimit_fn)dlsym(RTLD_NEXT, "setrlimit");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (real(resource, rlim) == 0)
        return 0;
    struct rlimit now, clamped = *rlim;
    if ((errno != EPERM && errno != EINVAL) || getrlimit(resource, &now) != 0)
        return -1;
    if (clamped.rlim_max > now.rlim_max)
        clamped.rlim_max = now.rlim_max;
    if (clamped.rlim_cur > clamped.rlim_max)
        clamped.rlim_cur = clamped.rlim_max;
    return real(resource, &clamped);
}
