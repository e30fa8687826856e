"""Python reference model of the Linux 6.12 iommufd uAPI (with IOMMUFD_TEST's mock
driver and the vfio container compatibility ioctls).

    from fuzz.model import Model, run_model

    m = Model(program)
    for i in range(len(program.ops)):
        result = m.step(i, kernel_result_or_None)
    # or: results = run_model(program, kernel_results_or_None)

Modules, named after the kernel files they follow:
  model.py     Model / run_model: argument resolution (Refs against the model's own
               results, BufPtr, width wrapping), the generic ioctl entry checks
               (min size -> EINVAL, non-zero tail -> E2BIG), dispatch, OpResult
  objects.py   the object table (lowest free id from 1, reserved-until-finalized
               ids, abort) and the object types Ioas, HwPagetable, HwptNested, Fault,
               Device, SelftestObj, Access with their 'users' counts (DESTROY -> EBUSY)
  iopt.py      io_pagetable / iopt_pages: Area, Pages, IoPagetable - areas,
               reserved/allowed ranges, iopt_alloc_iova, map/copy/unmap/split,
               domains (mock aperture, 2K pages), alignment, pin bookkeeping
  ioas.py      the IOAS ioctls, DESTROY, OPTION, IOMMU_VFIO_IOAS
  selftest.py  IOMMU_TEST_CMD: mock devices, the probes MD_CHECK_MAP / MD_CHECK_REFS /
               MD_CHECK_IOTLB, TEST_DIRTY, TRIGGER_IOPF, accesses (pin, rw, unmap
               callback, replace, close), close(2) of the program's fds
  device.py    device.c: attach / replace / detach, automatic domains, HWPT puts,
               IOMMU_GET_HW_INFO
  hwpt.py      hw_pagetable.c: IOMMU_HWPT_ALLOC (paging, nested), SET_DIRTY_TRACKING,
               GET_DIRTY_BITMAP, INVALIDATE
  mock.py      selftest.c's mock driver below the core: domain allocation checks,
               dirty bits per 2K IOVA page, huge (1M) entries, the nested IOTLB
  iova_bitmap.py  iova_bitmap.c: the user dirty bitmap, pinned lazily, bits OR-ed in
  fault.py     fault.c / io-pgfault.c: fault objects, IOPF delivery, read() / write() of
               the fault fd, auto-response on detach, release
  ucmd.py      what a handler sees of a struct shorter than the kernel's, and what the
               reply writes back
  userbuf.py   a user pointer or the executor's side array behind it (copy_to_user,
               clear_user, copy_from_user, the capture after the call)
  vfio.py      VFIO_* container ioctls (type1 split, capability chain)
  memory.py    the agent's user memory as the program sets it up: mapping,
               contents (pattern + writes), taint for unknown contents

Free choices taken from the kernel's result (only when it obeys the rules):
  - the automatic IOVA of IOAS_MAP / IOAS_COPY (IoPagetable.map_pages,
    IoPagetable.iova_choice_ok): otherwise the model's own first fit is kept
  - the fd number of TEST_CREATE_ACCESS and FAULT_QUEUE_ALLOC (Model.choose_fd): a
    valid fd that is not an open fd of the program; otherwise a made-up number
    >= 2,000,000 no real fd can have
  - CLOSE of a number that is not an access fd of the program: the agent's fd
    table is outside the model, so the kernel's EBADF is adopted (nothing was
    open, nothing changed); anything else is unsure (selftest.close)
  - the ids of objects that racing ops create (races.adopt_ids): each op takes
    its ids one object at a time, so they interleave; adopted when free (an id a
    racing op freed counts as free: ObjectTable.kept_from)
  - the fd numbers racing ops got (races.adopt_fds): a failing op holds its fd
    until it unwinds; adopted where the race leeway took them as the kernel's
  - the size a VFIO_IOMMU_UNMAP_DMA with large pages off copied back after failing
    on a racing map's area (races.fail_early): as given if its cut met the area, the
    bytes unmapped (none) if the unmap did
Fault injection (faults.py): an op whose injected fault failed it is undone; one
that succeeded anyway may have taken another path (faults.ALTERNATIVES), or must
have (faults.SURVIVED: a TEST_TRIGGER_IOPF whose fault group was not allocated).
Race groups (races.py): any order of the racing ops that keeps each thread's order.
Where the model cannot know, the op's OpResult has unsure set; 'poisoned' ones
(the kernel's state may now differ) make every later op unsure too.
"""

from fuzz.model.model import Model, run_model

__all__ = ["Model", "run_model"]
