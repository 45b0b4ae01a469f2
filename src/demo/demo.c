#include "demo/demo.h"
int gw_demo_main(int argc, char **argv) { (void)argc; (void)argv; return 1; }
