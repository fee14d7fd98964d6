/* OpenBLAS's choice of kernels for this CPU. OpenBLAS 0.3.21 (Debian 12) does not know recent
 * Intel models (e.g. Sapphire/Emerald Rapids, family 6 model 143/207) and falls back to its
 * Prescott (SSE3) kernels: the network's GEMMs then run 2.5-3x slower than with the AVX2 or
 * AVX-512 kernels the CPU supports (docs/performance.md, "OpenBLAS core"). The core is chosen
 * when the library loads, before main, so the fix is to restart the process with
 * OPENBLAS_CORETYPE set. */
#ifndef TG_BLAS_CORE_H
#define TG_BLAS_CORE_H

/* The core OpenBLAS should use on this CPU where its own detection fell back to Prescott
 * ("SkylakeX" with AVX-512 F/CD/BW/DQ/VL, "Haswell" with AVX2 and FMA), or NULL when its choice
 * stands (a known core, OPENBLAS_CORETYPE already set, or a CPU without AVX2/FMA). */
const char *tg_blas_core_better(void);
/* Call first in main() of a program that runs BLAS: where tg_blas_core_better() names a core,
 * re-executes the program (/proc/self/exe, same argv) with OPENBLAS_CORETYPE set to it; returns
 * only if nothing needs doing or the re-exec failed (a warning on stderr; the run goes on with
 * the slow kernels). TG_BLAS_CORE=keep leaves OpenBLAS's choice alone. */
void tg_blas_core_fix(char **argv);
#endif
