/* eventfd(2), which the Glibc module does not export: the bridge wakes a
 * connection's thread with one when another thread queues a message. */
#include <sys/eventfd.h>
