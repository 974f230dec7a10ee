#include <stdio.h>
int main(void) { puts("pea " PEA_VERSION); return 0; }
