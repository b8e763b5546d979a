/* sessrec-collector: being written (issue 3). */
#include <stdio.h>

int main(void)
{
	fprintf(stderr, "sessrec-collector: not built yet\n");
	return 1;
}
