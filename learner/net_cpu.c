/* CPU backend of the network (placeholder while the implementation lands). */
#include "learner/net.h"

#include "common/err.h"

static void *cpu_create(const tg_params *tab, int max_batch, int threads, uint64_t seed)
{
    (void)tab, (void)max_batch, (void)threads, (void)seed;
    tg_fail("CPU backend not implemented yet");
    return NULL;
}

const tg_net_ops tg_net_cpu_ops = {.name = "cpu", .create = cpu_create};
