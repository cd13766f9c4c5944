"""What a Xen toolstack asks of the store over a domain's life, written down as data.

The blocks below are the xenstore requests that libxl (Xen 4.17, ``tools/libs/light``)
and the components it drives make for ``xl create`` of a PV and an HVM guest with a disk
and a vif, ``xl shutdown``, ``xl reboot``, ``xl destroy`` and a network hot-plug and
unplug, in their order, with their transactions and watches, including the frontend/
backend ``XenbusState`` handshake as Linux's xenbus drivers perform it (1 Initialising,
2 InitWait, 3 Initialised, 4 Connected, 5 Closing, 6 Closed). Comments name the function
each step comes from. The tests (``tests/conformance/test_libxl_replay.py``) replay them
against xsd and against C xenstored and compare every reply and event; the boot-storm
benchmark (``tools/bench/bootstorm.py``) replays them as its unit of work.

Format: one request a line, ``actor [tx] OP args...`` (arguments split as a shell does;
``''`` is an empty value). ``tx`` runs the request in the actor's open transaction.
Placeholders: ``{d}`` the domid, ``{dom}`` its home, ``{uuid}``, ``{vm}`` (``/vm/{uuid}``),
``{name}``, ``{type}`` (pv or hvm), ``{ring}`` and ``{port}`` (its store ring), and in
device blocks ``{kind}`` (vbd, vif), ``{devid}``, ``{fe}`` / ``{be}`` / ``{lx}`` (the
frontend, backend and libxl paths). A line starting ``[pv]`` or ``[hvm]`` is for that
guest type only. ``= BLOCK key=value...`` plays another block with more placeholders.
Pseudo-requests: ``CLOSE`` (the actor's connection goes away).

The actors, each one connection:

* ``xl``: libxl inside ``xl`` (domain 0), which stays to watch the domain die;
* ``init``: dom0's boot scripts (xencommons), ``hotplug``: the hotplug scripts libxl
  runs (``block``, ``vif-bridge``; a connection per run), ``backend``: dom0 kernel's
  xenbus backends (blkback, netback), ``console``: xenconsoled, ``qemu``: the device
  model of an HVM guest: all domain 0;
* ``guest`` (``guest<domid>`` once expanded): the guest kernel's xenbus (frontends,
  shutdown, balloon). It acts on its own connection: against xsd that is the domain's
  socket, a real unprivileged connection
  that only the permissions libxl laid out before INTRODUCE let through; C xenstored's
  socket clients are all domain 0 (its guests talk over rings, which the shim cannot
  give), so there the same requests come from a domain 0 connection of their own. The
  guest therefore writes absolute paths (the kernel's relative ones resolve to the same
  nodes; relative paths are tested elsewhere). A permission libxl forgot shows up as an
  error on xsd that C, seeing domain 0, does not give: the comparison catches it.

What no xenstore can see without a hypervisor is stood in for by the actor that causes
it: the domain dying (C's ``VIRQ_DOM_EXC``: the hypervisor destroyed the domain, the
daemon releases it and fires ``@releaseDomain``) is ``xl RELEASE {d}`` right after libxl's
``xc_domain_destroy``, and the guest's connection closes just before (its kernel is
gone); C's extra ``@releaseDomain`` when a domain merely shuts down, and the moments
processes run, are not modelled. Every request is one at a time: what arrives in the
same instant on Xen (a watch event reaching several components) is played in the order
the components would then act.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass

BLOCKS: dict[str, str] = {}

BLOCKS["boot"] = """
# tools/hotplug/Linux/init.d/xencommons (xen-init-dom0): dom0's own nodes;
# libxl__get_domid() reads "domid" later
init WRITE /local/domain/0/domid 0
init WRITE /local/domain/0/name Domain-0
# Linux drivers/xen/xenbus/xenbus_probe_backend.c: the backend bus watches "backend"
backend WATCH /local/domain/0/backend be-bus
# tools/console/daemon/io.c: xenconsoled follows domains coming and going
console WATCH @introduceDomain console-in
console WATCH @releaseDomain console-out
"""

BLOCKS["domain_make"] = """
# libxl_create.c libxl__domain_make(): libxl__xs_get_dompath() asks the store
xl GET_DOMAIN_PATH {d}
# one transaction lays the domain out, with permissions naming it, before it is
# introduced: roperm = n0 r{d}, rwperm = n{d}, noperm = n0 (libxl__xs_mknod: write, chmod)
xl TRANSACTION_START
xl tx RM {dom}
xl tx WRITE {dom} ''
xl tx SET_PERMS {dom} n0 r{d}
xl tx RM {vm}
xl tx WRITE {vm} ''
xl tx SET_PERMS {vm} n0 r{d}
xl tx RM /libxl/{d}
xl tx WRITE /libxl/{d} ''
xl tx SET_PERMS /libxl/{d} n0
xl tx WRITE /libxl/{d}/device ''
xl tx SET_PERMS /libxl/{d}/device n0
xl tx WRITE {dom}/vm {vm}
# libxl_domain.c libxl__domain_rename(): libxl_get_stubdom_id() and the name's
# uniqueness (libxl_name_to_domid reads every live domain's name) outside the
# transaction, then the name inside it
xl READ {dom}/image/device-model-domid
xl READ /local/domain/0/name
xl tx WRITE {dom}/name {name}
xl tx WRITE {vm}/name {name}
xl tx WRITE {dom}/cpu ''
xl tx SET_PERMS {dom}/cpu n0 r{d}
xl tx WRITE {dom}/memory ''
xl tx SET_PERMS {dom}/memory n0 r{d}
xl tx WRITE {dom}/device ''
xl tx SET_PERMS {dom}/device n0 r{d}
xl tx WRITE {dom}/device/suspend/event-channel ''
xl tx SET_PERMS {dom}/device/suspend/event-channel n{d}
xl tx WRITE {dom}/control ''
xl tx SET_PERMS {dom}/control n0 r{d}
[hvm] xl tx WRITE {dom}/hvmloader ''
[hvm] xl tx SET_PERMS {dom}/hvmloader n0 r{d}
xl tx WRITE {dom}/control/shutdown ''
xl tx SET_PERMS {dom}/control/shutdown n{d}
xl tx WRITE {dom}/control/feature-poweroff ''
xl tx SET_PERMS {dom}/control/feature-poweroff n{d}
xl tx WRITE {dom}/control/feature-reboot ''
xl tx SET_PERMS {dom}/control/feature-reboot n{d}
xl tx WRITE {dom}/control/feature-suspend ''
xl tx SET_PERMS {dom}/control/feature-suspend n{d}
[hvm] xl tx WRITE {dom}/control/feature-s3 ''
[hvm] xl tx SET_PERMS {dom}/control/feature-s3 n{d}
[hvm] xl tx WRITE {dom}/control/feature-s4 ''
[hvm] xl tx SET_PERMS {dom}/control/feature-s4 n{d}
xl tx WRITE {dom}/control/sysrq ''
xl tx SET_PERMS {dom}/control/sysrq n{d}
xl tx WRITE {dom}/data ''
xl tx SET_PERMS {dom}/data n{d}
xl tx WRITE {dom}/drivers ''
xl tx SET_PERMS {dom}/drivers n{d}
xl tx WRITE {dom}/feature ''
xl tx SET_PERMS {dom}/feature n{d}
xl tx WRITE {dom}/attr ''
xl tx SET_PERMS {dom}/attr n{d}
xl tx WRITE {dom}/error ''
xl tx SET_PERMS {dom}/error n{d}
xl tx WRITE {vm}/uuid {uuid}
xl tx WRITE {vm}/name {name}
xl tx WRITE {dom}/control/platform-feature-multiprocessor-suspend 1
xl tx WRITE {dom}/control/platform-feature-xs_reset_watches 1
xl tx WRITE /libxl/{d}/type {type}
xl TRANSACTION_END T
# libxl_create.c store_libxl_entry()
xl WRITE /libxl/{d}/dm-version qemu_xen
"""

BLOCKS["build_post"] = """
# libxl_dom.c libxl__build_post(): the domain's store ring, then INTRODUCE
xl GET_DOMAIN_PATH {d}
xl READ {dom}/vm
xl TRANSACTION_START
xl tx WRITE {dom}/memory/static-max 1048576
xl tx WRITE {dom}/memory/target 1047552
xl tx WRITE {dom}/memory/videoram 0
xl tx WRITE {dom}/domid {d}
xl tx WRITE {dom}/store/port {port}
xl tx WRITE {dom}/store/ring-ref {ring}
xl tx WRITE {dom}/cpu/0/availability online
xl tx WRITE {dom}/cpu/1/availability online
[pv] xl tx WRITE {dom}/console/port 2
[pv] xl tx WRITE {dom}/console/ring-ref 4093
[pv] xl tx WRITE {vm}/image/ostype linux
[pv] xl tx WRITE {vm}/image/kernel /boot/vmlinuz
[hvm] xl tx WRITE {vm}/image/ostype hvm
xl tx WRITE {vm}/start_time 1700000000.00
xl TRANSACTION_END T
xl INTRODUCE {d} {ring} {port}
# libxl_domain.c libxl_evenable_domain_death(): xl watches for the domain's end
xl WATCH @releaseDomain domain-death-{d}
"""

BLOCKS["guest_boot"] = """
# Linux drivers/xen/xenbus/xenbus_xs.c xs_reset_watches(): a kernel that finds the
# feature flag clears what an earlier kernel of the domain left
guest READ {dom}/control/platform-feature-xs_reset_watches
guest RESET_WATCHES
# xenbus_probe_frontend.c: the frontend bus watches "device"
guest WATCH {dom}/device fe-bus
# drivers/xen/manage.c setup_shutdown_watcher(): watches, then the features it has
guest WATCH {dom}/control/shutdown shutdown
guest WATCH {dom}/control/sysrq sysrq
guest WRITE {dom}/control/feature-poweroff 1
guest WRITE {dom}/control/feature-reboot 1
guest WRITE {dom}/control/feature-suspend 1
# drivers/xen/xen-balloon.c: the balloon follows memory/target
guest WATCH {dom}/memory/target balloon
guest READ {dom}/memory/target
guest DIRECTORY {dom}/device
"""

BLOCKS["dm_spawn"] = """
# libxl_dm.c libxl__spawn_local_dm(): HVM firmware settings, the device model's
# directory, then libxl__spawn_spawn() waits for QEMU to say "running"
xl GET_DOMAIN_PATH {d}
xl WRITE {dom}/hvmloader/bios seabios
xl WRITE {dom}/hvmloader/allow-memory-relocate 0
xl MKDIR /local/domain/0/device-model/{d}
xl WATCH /local/domain/0/device-model/{d}/state dm-spawn
xl WRITE {dom}/image/device-model-pid 4242
# QEMU's xen machine (hw/xen/xen-legacy-backend.c, xen_pvdev): it is up
qemu WRITE /local/domain/0/device-model/{d}/state running
# libxl_dm.c device_model_confirm(): done waiting
xl READ /local/domain/0/device-model/{d}/state
xl UNWATCH /local/domain/0/device-model/{d}/state dm-spawn
"""

BLOCKS["console_add"] = """
# libxl_console.c libxl__device_console_add() -> libxl_device.c
# libxl__device_generic_add(): console 0's frontend is read-only for the guest
xl TRANSACTION_START
xl tx RM /libxl/{d}/device/console/0
xl tx WRITE /libxl/{d}/device/console/0/frontend {dom}/console
xl tx WRITE /libxl/{d}/device/console/0/backend /local/domain/0/backend/console/{d}/0
xl tx RM {dom}/console
xl tx MKDIR {dom}/console
xl tx SET_PERMS {dom}/console n0 r{d}
xl tx WRITE {dom}/console/backend /local/domain/0/backend/console/{d}/0
xl tx WRITE {dom}/console/backend-id 0
xl tx SET_PERMS {dom}/console/backend-id n0 r{d}
xl tx WRITE {dom}/console/limit 1048576
xl tx SET_PERMS {dom}/console/limit n0 r{d}
xl tx WRITE {dom}/console/type xenconsoled
xl tx SET_PERMS {dom}/console/type n0 r{d}
xl tx WRITE {dom}/console/output pty
xl tx SET_PERMS {dom}/console/output n0 r{d}
xl tx WRITE {dom}/console/tty ''
xl tx SET_PERMS {dom}/console/tty n0 r{d}
xl tx RM /local/domain/0/backend/console/{d}/0
xl tx MKDIR /local/domain/0/backend/console/{d}/0
xl tx SET_PERMS /local/domain/0/backend/console/{d}/0 n0 r{d}
xl tx WRITE /local/domain/0/backend/console/{d}/0/frontend {dom}/console
xl tx WRITE /local/domain/0/backend/console/{d}/0/frontend-id {d}
xl tx WRITE /local/domain/0/backend/console/{d}/0/online 1
xl tx WRITE /local/domain/0/backend/console/{d}/0/state 1
xl tx WRITE /local/domain/0/backend/console/{d}/0/protocol vt100
xl tx WRITE /libxl/{d}/device/console/0/frontend-id {d}
xl tx WRITE /libxl/{d}/device/console/0/online 1
xl tx WRITE /libxl/{d}/device/console/0/state 1
xl tx WRITE /libxl/{d}/device/console/0/protocol vt100
xl TRANSACTION_END T
"""

BLOCKS["device_add"] = """
# libxl_disk.c device_disk_add() / libxl_nic.c (libxl__device_add_async): one
# transaction; libxl__device_exists() first, then libxl__device_generic_add():
# frontend n{d} r0, backend n0 r{d}, and a copy of the backend's entries under {lx}
xl TRANSACTION_START
xl tx READ {lx}
xl tx RM {lx}
xl tx WRITE {lx}/frontend {fe}
xl tx WRITE {lx}/backend {be}
xl tx RM {fe}
xl tx MKDIR {fe}
xl tx SET_PERMS {fe} n{d} r0
xl tx WRITE {fe}/backend {be}
xl tx WRITE {fe}/backend-id 0
xl tx SET_PERMS {fe}/backend-id n{d} r0
xl tx WRITE {fe}/state 1
xl tx SET_PERMS {fe}/state n{d} r0
= device_front_{kind}
xl tx RM {be}
xl tx MKDIR {be}
xl tx SET_PERMS {be} n0 r{d}
xl tx WRITE {be}/frontend {fe}
xl tx WRITE {be}/frontend-id {d}
xl tx WRITE {be}/online 1
xl tx WRITE {be}/state 1
= device_back_{kind}
xl tx WRITE {lx}/frontend-id {d}
xl tx WRITE {lx}/online 1
xl tx WRITE {lx}/state 1
xl TRANSACTION_END T
# libxl_device.c libxl__wait_device_connection(): libxl__ev_devstate_wait() for
# the backend's InitWait (a watch, whose first event libxl reads the state on)
xl WATCH {be}/state devstate-{kind}-{devid}
xl READ {be}/state
# the backend driver's probe (xenbus_probe_backend.c, xenbus_probe.c
# xenbus_read_otherend_details(), blkback/netback probe): features, then InitWait
backend READ {be}/frontend-id
backend READ {be}/frontend
= device_probe_{kind}
backend TRANSACTION_START
backend tx READ {be}/state
backend tx WRITE {be}/state 2
backend TRANSACTION_END T
backend WATCH {fe}/state otherend-{kind}-{devid}
# libxl sees InitWait: stops waiting, runs the hotplug script (device_hotplug())
xl READ {be}/state
xl UNWATCH {be}/state devstate-{kind}-{devid}
= device_hotplug_{kind}
# the frontend driver's probe on the guest (xenbus_probe_frontend.c): the device
# under its "device" watch, the other end's details and state watch
guest DIRECTORY {dom}/device/{kind}
guest READ {fe}/backend-id
guest READ {fe}/backend
guest WATCH {be}/state otherend
guest READ {be}/state
# blkfront talk_to_blkback() / netfront talk_to_netback(): the rings in a
# transaction, then xenbus_switch_state() (itself a transaction)
guest TRANSACTION_START
= device_rings_{kind}
guest TRANSACTION_END T
guest TRANSACTION_START
guest tx READ {fe}/state
guest tx WRITE {fe}/state {fe_ready}
guest TRANSACTION_END T
# the backend sees the frontend ready (frontend_changed()): reads the rings,
# connects, publishes what the frontend needs, Connected
backend READ {fe}/state
= device_connect_{kind}
backend TRANSACTION_START
backend tx READ {be}/state
backend tx WRITE {be}/state 4
backend TRANSACTION_END T
# the frontend sees Connected (blkfront_connect() / netback's): reads, Connected
guest READ {be}/state
= device_front_connect_{kind}
guest TRANSACTION_START
guest tx READ {fe}/state
guest tx WRITE {fe}/state 4
guest TRANSACTION_END T
backend READ {fe}/state
"""

BLOCKS["device_front_vbd"] = """
xl tx WRITE {fe}/virtual-device {devid}
xl tx SET_PERMS {fe}/virtual-device n{d} r0
xl tx WRITE {fe}/device-type disk
xl tx SET_PERMS {fe}/device-type n{d} r0
xl tx WRITE {fe}/trusted 1
xl tx SET_PERMS {fe}/trusted n{d} r0
[pv] xl tx WRITE {fe}/protocol x86_64-abi
[pv] xl tx SET_PERMS {fe}/protocol n{d} r0
"""

BLOCKS["device_back_vbd"] = """
xl tx WRITE {be}/removable 0
xl tx WRITE {be}/bootable 1
xl tx WRITE {be}/dev {vdev}
xl tx WRITE {be}/type phy
xl tx WRITE {be}/mode w
xl tx WRITE {be}/device-type disk
xl tx WRITE {be}/discard-enable 1
xl tx WRITE {be}/specification xen
xl tx WRITE {be}/params /dev/vg/{name}-disk
xl tx WRITE {be}/script /etc/xen/scripts/block
"""

BLOCKS["device_front_vif"] = """
xl tx WRITE {fe}/handle {devid}
xl tx SET_PERMS {fe}/handle n{d} r0
xl tx WRITE {fe}/mac 00:16:3e:00:{d:02x}:{devid:02x}
xl tx SET_PERMS {fe}/mac n{d} r0
xl tx WRITE {fe}/trusted 1
xl tx SET_PERMS {fe}/trusted n{d} r0
"""

BLOCKS["device_back_vif"] = """
xl tx WRITE {be}/script /etc/xen/scripts/vif-bridge
xl tx WRITE {be}/mac 00:16:3e:00:{d:02x}:{devid:02x}
xl tx WRITE {be}/bridge xenbr0
xl tx WRITE {be}/handle {devid}
xl tx WRITE {be}/type vif
"""

BLOCKS["device_probe_vbd"] = """
# blkback xen_blkbk_probe(): features, then a watch for the hotplug script's
# physical-device (backend_changed())
backend TRANSACTION_START
backend tx WRITE {be}/feature-max-indirect-segments 256
backend tx WRITE {be}/feature-persistent 1
backend tx WRITE {be}/max-ring-page-order 4
backend TRANSACTION_END T
backend WATCH {be}/physical-device physdev
"""

BLOCKS["device_probe_vif"] = """
# netback netback_probe(): features in a transaction, then a watch for the
# hotplug script's hotplug-status (hotplug_status_changed())
backend TRANSACTION_START
backend tx WRITE {be}/feature-sg 1
backend tx WRITE {be}/feature-gso-tcpv4 1
backend tx WRITE {be}/feature-rx-copy 1
backend tx WRITE {be}/feature-split-event-channels 1
backend tx WRITE {be}/multi-queue-max-queues 2
backend TRANSACTION_END T
backend WATCH {be}/hotplug-status hotplug
"""

BLOCKS["device_hotplug_vbd"] = """
# tools/hotplug/Linux/block (add): the device, then success()
hotplug READ {be}/params
hotplug READ {be}/mode
hotplug WRITE {be}/physical-device fe:{devid:x}
hotplug WRITE {be}/physical-device-path /dev/dm-{devid}
hotplug WRITE {be}/hotplug-status connected
hotplug CLOSE
# blkback backend_changed(): the vbd comes to life
backend READ {be}/physical-device
backend READ {be}/mode
backend READ {be}/device-type
"""

BLOCKS["device_hotplug_vif"] = """
# tools/hotplug/Linux/vif-bridge (online): the bridge, then success()
hotplug READ {be}/bridge
hotplug READ {be}/mac
hotplug WRITE {be}/hotplug-status connected
hotplug CLOSE
# netback hotplug_status_changed()
backend READ {be}/hotplug-status
backend UNWATCH {be}/hotplug-status hotplug
"""

BLOCKS["device_rings_vbd"] = """
guest tx WRITE {fe}/ring-ref 8
guest tx WRITE {fe}/event-channel 12
guest tx WRITE {fe}/protocol x86_64-abi
guest tx WRITE {fe}/feature-persistent 1
"""

BLOCKS["device_rings_vif"] = """
guest tx WRITE {fe}/tx-ring-ref 9
guest tx WRITE {fe}/rx-ring-ref 10
guest tx WRITE {fe}/event-channel 13
guest tx WRITE {fe}/request-rx-copy 1
guest tx WRITE {fe}/feature-rx-notify 1
guest tx WRITE {fe}/feature-sg 1
"""

BLOCKS["device_connect_vbd"] = """
backend READ {fe}/ring-ref
backend READ {fe}/event-channel
backend READ {fe}/protocol
backend TRANSACTION_START
backend tx WRITE {be}/feature-flush-cache 1
backend tx WRITE {be}/sectors 2097152
backend tx WRITE {be}/info 0
backend tx WRITE {be}/sector-size 512
backend TRANSACTION_END T
"""

BLOCKS["device_connect_vif"] = """
backend READ {fe}/tx-ring-ref
backend READ {fe}/rx-ring-ref
backend READ {fe}/event-channel
backend READ {fe}/request-rx-copy
"""

BLOCKS["device_front_connect_vbd"] = """
guest READ {be}/sectors
guest READ {be}/info
guest READ {be}/sector-size
guest READ {be}/feature-flush-cache
"""

BLOCKS["device_front_connect_vif"] = """
guest READ {be}/feature-rx-copy
guest READ {be}/feature-sg
"""

BLOCKS["create"] = """
# xl create: libxl_create.c do_domain_create() -> initiate_domain_create()
= domain_make
= build_post
= guest_boot
[pv] = console_add
[hvm] = dm_spawn
# domcreate_rebuild_done() -> libxl__add_disks(), then libxl__add_nics()
= device_add kind=vbd devid={disk} vdev={vdev}
= device_add kind=vif devid=0
"""

BLOCKS["pvcontrol"] = """
# xl shutdown / xl reboot: libxl_domain.c libxl__domain_pvcontrol(): the request,
# then libxl__xswait_start() waits for the guest to acknowledge it
xl GET_DOMAIN_PATH {d}
xl WRITE {dom}/control/shutdown {cmd}
xl WATCH {dom}/control/shutdown pvcontrol
xl READ {dom}/control/shutdown
# Linux drivers/xen/manage.c shutdown_handler(): read and clear it in a transaction
guest TRANSACTION_START
guest tx READ {dom}/control/shutdown
guest tx WRITE {dom}/control/shutdown ''
guest TRANSACTION_END T
# pvcontrol_cb(): acknowledged
xl READ {dom}/control/shutdown
xl UNWATCH {dom}/control/shutdown pvcontrol
# the guest's devices go down as it does (xenbus_frontend_dev_shutdown(): Closing,
# the backend follows to Closed, then the frontend is Closed)
= device_close kind=vbd devid={disk}
= device_close kind=vif devid=0
"""

BLOCKS["device_close"] = """
guest TRANSACTION_START
guest tx READ {fe}/state
guest tx WRITE {fe}/state 5
guest TRANSACTION_END T
backend READ {fe}/state
backend TRANSACTION_START
backend tx READ {be}/state
backend tx WRITE {be}/state 6
backend TRANSACTION_END T
guest READ {be}/state
guest TRANSACTION_START
guest tx READ {fe}/state
guest tx WRITE {fe}/state 6
guest TRANSACTION_END T
"""

BLOCKS["device_remove"] = """
# libxl_device.c libxl__initiate_device_generic_remove(): a dead guest's devices are
# removed by force (the frontend first), else online=0 and Closing, then
# libxl__ev_devstate_wait() for Closed
xl TRANSACTION_START
[force] xl tx RM {fe}
[force] xl tx READ {dom}/device/{kind}
[force] xl tx DIRECTORY {dom}/device/{kind}
xl tx READ {be}/state
xl tx WRITE {be}/online 0
[live] xl tx WRITE {be}/state 5
xl TRANSACTION_END T
xl WATCH {be}/state devstate-{kind}-{devid}
xl READ {be}/state
# the backend driver sees online=0 (frontend_changed()/backend_changed()) and closes
backend READ {be}/online
[live] guest READ {be}/state
[live] guest TRANSACTION_START
[live] guest tx READ {fe}/state
[live] guest tx WRITE {fe}/state 6
[live] guest TRANSACTION_END T
[live] guest UNWATCH {be}/state otherend
backend TRANSACTION_START
backend tx READ {be}/state
backend tx WRITE {be}/state 6
backend TRANSACTION_END T
xl READ {be}/state
xl UNWATCH {be}/state devstate-{kind}-{devid}
# the hotplug script's offline/remove (device_hotplug()), then
# libxl__device_destroy(): libxl__xs_path_cleanup() of frontend, libxl and backend
# paths, each also removing parents left empty
hotplug READ {be}/params
hotplug RM {be}/hotplug-status
hotplug CLOSE
xl READ /local/domain/0/domid
xl TRANSACTION_START
xl tx RM {fe}
xl tx READ {dom}/device/{kind}
xl tx DIRECTORY {dom}/device/{kind}
xl tx RM {lx}
xl tx READ /libxl/{d}/device/{kind}
xl tx DIRECTORY /libxl/{d}/device/{kind}
xl tx RM {be}
xl tx READ /local/domain/0/backend/{kind}/{d}
xl tx DIRECTORY /local/domain/0/backend/{kind}/{d}
xl TRANSACTION_END T
# the backend bus sees its device gone and drops its watches
backend UNWATCH {fe}/state otherend-{kind}-{devid}
"""

BLOCKS["device_remove_vbd_extra"] = """
backend UNWATCH {be}/physical-device physdev
"""

BLOCKS["destroy"] = """
# xl destroy (also what xl does once a shut-down domain is gone): libxl_domain.c
# libxl__destroy_domid() -> libxl__devices_destroy(): the devices libxl recorded
xl DIRECTORY /libxl/{d}/device
xl DIRECTORY /libxl/{d}/device/vbd
xl READ /libxl/{d}/device/vbd/{disk}/backend
= device_remove kind=vbd devid={disk} force=1
= device_remove_vbd_extra kind=vbd devid={disk}
xl DIRECTORY /libxl/{d}/device/vif
xl READ /libxl/{d}/device/vif/0/backend
= device_remove kind=vif devid=0 force=1
[hvm] xl RM /local/domain/0/device-model/{d}
# devices_destroy_cb(): the domain's paths
xl GET_DOMAIN_PATH {d}
xl READ {dom}/vm
xl RM {vm}
xl RM {dom}
xl RM /libxl/{d}
xl RM {dom}/hvmloader
# domain_destroy_domid_cb(): xc_domain_destroy(); the hypervisor's VIRQ_DOM_EXC
# makes C xenstored release the domain (see the module docstring)
guest CLOSE
xl RELEASE {d}
xl IS_DOMAIN_INTRODUCED {d}
# xl's death watch fires; it is done with the domain
xl UNWATCH @releaseDomain domain-death-{d}
"""

BLOCKS["shutdown"] = """
= pvcontrol cmd=poweroff
= destroy
"""

BLOCKS["reboot"] = """
# xl reboot: the same request; on_reboot=restart makes xl destroy the domain and
# create it again (a new domid, as Xen gives one)
= pvcontrol cmd=reboot
= destroy
"""

BLOCKS["hotplug"] = """
# xl network-attach: libxl_device_nic_add() on a running guest, the guest's
# frontend bus sees the new device
= device_add kind=vif devid=1
# xl network-detach: libxl_device_nic_remove(), a graceful remove the guest takes part in
= device_remove kind=vif devid=1 live=1
"""


@dataclass(frozen=True)
class Request:
    """One request of the replay: who sends it, what, whether in its transaction."""

    actor: str
    op: str
    args: tuple[str, ...]
    tx: bool = False


@dataclass(frozen=True)
class Guest:
    """One domain a sequence is about."""

    domid: int
    type: str = "pv"  # "pv" or "hvm"

    def values(self) -> dict[str, object]:
        d = self.domid
        uuid = f"00000000-0000-4000-8000-{d:012x}"
        return {
            "d": d,
            "dom": f"/local/domain/{d}",
            "uuid": uuid,
            "vm": f"/vm/{uuid}",
            "name": f"guest{d}",
            "type": self.type,
            "ring": 4094 - d % 1000,
            "port": 1,
            # the boot disk: xvda on a PV guest, hda (with a PV path) on an HVM one
            "disk": 51712 if self.type == "pv" else 768,
            "vdev": "xvda" if self.type == "pv" else "hda",
            self.type: 1,
        }


def _device_values(values: dict[str, object]) -> dict[str, object]:
    kind, devid, d = values["kind"], values["devid"], values["d"]
    values["fe"] = f"/local/domain/{d}/device/{kind}/{devid}"
    values["be"] = f"/local/domain/0/backend/{kind}/{d}/{devid}"
    values["lx"] = f"/libxl/{d}/device/{kind}/{devid}"
    values["fe_ready"] = 3 if kind == "vbd" else 4  # netfront goes straight to Connected
    values.setdefault("live" if "force" not in values else "force", 1)
    return values


def expand(block: str, guest: Guest | None = None, **extra: object) -> Iterator[Request]:
    """The requests of ``block`` for ``guest`` (None: no domain, e.g. ``boot``)."""
    values = guest.values() if guest else {}
    values.update(extra)
    yield from _expand(block, values)


def _expand(block: str, values: dict[str, object]) -> Iterator[Request]:
    for raw in BLOCKS[block].splitlines():
        line = raw.strip()
        while line.startswith("["):
            cond, _, line = line[1:].partition("]")
            if cond not in values:
                break
            line = line.strip()
        else:
            if not line or line.startswith("#"):
                continue
            if line.startswith("="):
                name, *pairs = line[1:].split()
                inner = dict(values)
                for pair in pairs:
                    key, _, value = pair.partition("=")
                    text = value.format(**values)
                    inner[key] = int(text) if text.isdigit() else text
                if "kind" in inner and "devid" in inner and "fe" not in pairs:
                    inner = _device_values(inner)
                yield from _expand(name.format(**inner), inner)
                continue
            words = shlex.split(line.format(**values))
            actor, words = words[0], words[1:]
            if actor == "guest":
                actor = f"guest{values['d']}"  # each domain's kernel: its own connection
            tx = words[0] == "tx"
            if tx:
                words = words[1:]
            yield Request(actor, words[0], tuple(words[1:]), tx)


def lifecycle(first: int = 1) -> list[tuple[str, list[Request]]]:
    """The whole replay, as ``(what, requests)`` parts in order.

    A PV guest (domain ``first``) and an HVM one (``first + 1``) are created; the PV
    one gets a vif hot-plugged and unplugged, then is shut down; the HVM one is
    rebooted (destroyed, created again as domain ``first + 2``), and the new one is
    destroyed; finally domain ``first`` is created again, its id released and reused,
    and destroyed.
    """
    pv, hvm = Guest(first, "pv"), Guest(first + 1, "hvm")
    again = Guest(first + 2, "hvm")
    return [
        ("boot", list(expand("boot"))),
        ("xl create (PV)", list(expand("create", pv))),
        ("xl create (HVM)", list(expand("create", hvm))),
        ("xl network-attach/-detach", list(expand("hotplug", pv))),
        ("xl shutdown (PV)", list(expand("shutdown", pv))),
        ("xl reboot (HVM)", list(expand("reboot", hvm))),
        ("xl create (HVM, after reboot)", list(expand("create", again))),
        ("xl destroy (HVM)", list(expand("destroy", again))),
        ("xl create (PV, domid reused)", list(expand("create", pv))),
        ("xl destroy (PV, domid reused)", list(expand("destroy", pv))),
    ]
