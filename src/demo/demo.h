/*
 * Demo: `pgmoat demo` — a throwaway PostgreSQL with fake PII, a gateway with
 * a demo agent identity and token, and ready-to-paste psql lines. Ctrl-C
 * stops every process it started and removes its files.
 *
 * Owns: the demo's temp directory, its child processes and their cleanup.
 */
#ifndef GW_DEMO_DEMO_H
#define GW_DEMO_DEMO_H

int gw_demo_main(int argc, char **argv);

#endif
