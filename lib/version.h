/* version.h — imapsnap's version, for --version and the manifest. */
#ifndef IMAPSNAP_VERSION_H
#define IMAPSNAP_VERSION_H

#define IMAPSNAP_VERSION "0.1.0"

#endif
