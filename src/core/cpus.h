/*
 * cpus.h - how many CPUs this process may run on.
 *
 * The default worker count. sysconf(_SC_NPROCESSORS_ONLN) counts every
 * online CPU of the machine, so under taskset or a container's cpuset the
 * daemon would start more workers than it has cores, and they would
 * time-slice one another. The affinity mask is what the scheduler honours
 * (Go's runtime reads it too).
 */
#ifndef DERPER_CPUS_H
#define DERPER_CPUS_H

/* Returns the number of CPUs in the calling thread's affinity mask
 * (sched_getaffinity), or sysconf(_SC_NPROCESSORS_ONLN) if the mask cannot
 * be read; at least 1. Any thread; call it before starting threads whose
 * affinity differs. */
int cpus_usable(void);

#endif
