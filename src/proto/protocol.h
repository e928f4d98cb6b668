/* proto/protocol.h — the names of the PostgreSQL v3 protocol's bytes and
 * codes, so that message handling reads "PqMsg_ReadyForQuery" where it used
 * to read 'Z', and frontend Sync and backend ParameterStatus (both 'S') are
 * told apart by name rather than by context.
 * Owns: nothing.
 * Exports: PqMsg_* message types by direction (the names PostgreSQL itself
 *          uses), AUTH_REQ_* authentication request codes, PQ_TXN_* status
 *          bytes of ReadyForQuery, PQ_DIAG_* field codes of ErrorResponse and
 *          NoticeResponse, the SCRAM-SHA-256 mechanism name.
 * Never: holds code. The untyped startup-phase packets (StartupMessage,
 *        CancelRequest, SSLRequest, GSSENCRequest) are proto/startup.h's. */
#ifndef PGS_PROTO_PROTOCOL_H
#define PGS_PROTO_PROTOCOL_H

/* Message types sent by a frontend (a client, or pgsluice to a server). */
#define PqMsg_Bind 'B'
#define PqMsg_Close 'C'
#define PqMsg_Describe 'D'
#define PqMsg_Execute 'E'
#define PqMsg_FunctionCall 'F'
#define PqMsg_Flush 'H'
#define PqMsg_Parse 'P'
#define PqMsg_Query 'Q'
#define PqMsg_Sync 'S'
#define PqMsg_Terminate 'X'
#define PqMsg_CopyFail 'f'
/* One type byte for every answer to an Authentication request: which one
 * it is follows from the request. */
#define PqMsg_GSSResponse 'p'
#define PqMsg_PasswordMessage 'p'
#define PqMsg_SASLInitialResponse 'p'
#define PqMsg_SASLResponse 'p'

/* Message types sent by a backend (a server, or pgsluice to a client). */
#define PqMsg_ParseComplete '1'
#define PqMsg_BindComplete '2'
#define PqMsg_CloseComplete '3'
#define PqMsg_NotificationResponse 'A'
#define PqMsg_CommandComplete 'C'
#define PqMsg_DataRow 'D'
#define PqMsg_ErrorResponse 'E'
#define PqMsg_CopyInResponse 'G'
#define PqMsg_CopyOutResponse 'H'
#define PqMsg_EmptyQueryResponse 'I'
#define PqMsg_BackendKeyData 'K'
#define PqMsg_NoticeResponse 'N'
#define PqMsg_AuthenticationRequest 'R'
#define PqMsg_ParameterStatus 'S'
#define PqMsg_RowDescription 'T'
#define PqMsg_FunctionCallResponse 'V'
#define PqMsg_CopyBothResponse 'W'
#define PqMsg_ReadyForQuery 'Z'
#define PqMsg_NoData 'n'
#define PqMsg_PortalSuspended 's'
#define PqMsg_ParameterDescription 't'
#define PqMsg_NegotiateProtocolVersion 'v'

/* Message types both directions send (COPY FROM STDIN / TO STDOUT). */
#define PqMsg_CopyDone 'c'
#define PqMsg_CopyData 'd'

/* The single byte answering SSLRequest or GSSENCRequest: 'N' means no
 * encryption is offered and the client goes on in the clear ('S' and 'G'
 * would accept). */
#define PQ_ENCRYPTION_REFUSED 'N'

/* The int32 code opening an AuthenticationRequest ('R') body. */
#define AUTH_REQ_OK 0         /* logged in */
#define AUTH_REQ_KRB4 1       /* Kerberos V4: gone from PostgreSQL */
#define AUTH_REQ_KRB5 2       /* Kerberos V5: gone from PostgreSQL */
#define AUTH_REQ_PASSWORD 3   /* cleartext password */
#define AUTH_REQ_CRYPT 4      /* crypt(): gone from PostgreSQL */
#define AUTH_REQ_MD5 5        /* md5 with a 4-byte salt */
                              /* 6 was SCM credentials, gone from PostgreSQL */
#define AUTH_REQ_GSS 7        /* GSSAPI */
#define AUTH_REQ_GSS_CONT 8   /* GSSAPI, continued */
#define AUTH_REQ_SSPI 9       /* SSPI */
#define AUTH_REQ_SASL 10      /* SASL: the mechanism names follow */
#define AUTH_REQ_SASL_CONT 11 /* SASLContinue: server-first-message */
#define AUTH_REQ_SASL_FIN 12  /* SASLFinal: server-final-message */

/* The transaction status byte of ReadyForQuery. */
#define PQ_TXN_IDLE 'I'     /* not in a transaction block */
#define PQ_TXN_IN_BLOCK 'T' /* in a transaction block */
#define PQ_TXN_FAILED 'E'   /* in a failed transaction block */

/* Field codes of ErrorResponse and NoticeResponse bodies (the ones
 * pgsluice writes or reads; the others are relayed untouched). */
#define PQ_DIAG_SEVERITY 'S'   /* localised */
#define PQ_DIAG_SEVERITY_V 'V' /* never localised (9.6 and later) */
#define PQ_DIAG_SQLSTATE 'C'
#define PQ_DIAG_MESSAGE 'M'
#define PQ_DIAG_DETAIL 'D'
#define PQ_DIAG_HINT 'H'

/* The one SASL mechanism pgsluice speaks, in both directions. */
#define SCRAM_MECHANISM "SCRAM-SHA-256"

#endif
