#ifndef LOA_CMICROHTTPD_SHIM_H
#define LOA_CMICROHTTPD_SHIM_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stdint.h>
#include <microhttpd.h>

// MHD_OPTION_URI_LOG_CALLBACK takes a function of this type; microhttpd.h names none.
typedef void *(*cmhd_uri_log_callback)(void *cls, const char *uri, struct MHD_Connection *connection);

// MHD_start_daemon is variadic: Swift passes its options through one MHD_OPTION_ARRAY; the callback
// options are fixed arguments so no function pointer has to be cast to intptr_t.
static inline struct MHD_Daemon *cmhd_start_daemon(unsigned int flags, uint16_t port,
                                                   MHD_AccessHandlerCallback handler, void *handler_cls,
                                                   MHD_RequestCompletedCallback completed, void *completed_cls,
                                                   MHD_NotifyConnectionCallback notify, void *notify_cls,
                                                   cmhd_uri_log_callback uri_log, void *uri_log_cls,
                                                   MHD_LogCallback logger, void *logger_cls,
                                                   struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                            MHD_OPTION_NOTIFY_CONNECTION, notify, notify_cls,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_log, uri_log_cls,
                            MHD_OPTION_EXTERNAL_LOGGER, logger, logger_cls,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}
// MHD_get_daemon_info is variadic: fixed-argument wrapper (used for MHD_DAEMON_INFO_BIND_PORT).
static inline const union MHD_DaemonInfo *cmhd_get_daemon_info(struct MHD_Daemon *d, enum MHD_DaemonInfoType t) {
    return MHD_get_daemon_info(d, t);
}
// MHD_get_connection_info is variadic: fixed-argument wrapper (CLIENT_ADDRESS, CONNECTION_FD).
static inline const union MHD_ConnectionInfo *cmhd_get_connection_info(struct MHD_Connection *c, enum MHD_ConnectionInfoType t) {
    return MHD_get_connection_info(c, t);
}

#endif
