//! MongoDB's error codes and the error every layer of Eddy hands to a client.
//!
//! This crate sits at the bottom of the dependency graph (beside `bson`): the query
//! language, the engine and the server all speak in [`MongoError`], so that an error
//! raised anywhere reaches the client with mongod's `code`, `codeName` and labels.
//! The table mirrors `src/mongo/base/error_codes.yml` of MongoDB 7.0 for the codes
//! Eddy raises; `Location<N>` codes (assertion ids without a name) use
//! [`MongoError::location`], with the ones raised from several places named in
//! [`location`]. The categories drivers act upon (retryable writes, resumable and
//! non-resumable change stream errors) are in [`category`], with the driver
//! specifications' code lists.

use std::borrow::Cow;
use std::fmt;

use bson::{doc, Document};

macro_rules! error_codes {
    ($($name:ident = $code:literal,)*) => {
        /// A named MongoDB error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($name,)*
        }

        impl ErrorCode {
            /// The numeric code sent as `code`.
            pub const fn code(self) -> i32 {
                match self {
                    $(ErrorCode::$name => $code,)*
                }
            }

            /// The name sent as `codeName`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)*
                }
            }

            /// The named code for a number, if MongoDB names it.
            pub fn from_code(code: i32) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    InternalError = 1,
    BadValue = 2,
    NoSuchKey = 4,
    GraphContainsCycle = 5,
    HostUnreachable = 6,
    HostNotFound = 7,
    UnknownError = 8,
    FailedToParse = 9,
    CannotMutateObject = 10,
    UserNotFound = 11,
    UnsupportedFormat = 12,
    Unauthorized = 13,
    TypeMismatch = 14,
    Overflow = 15,
    InvalidLength = 16,
    ProtocolError = 17,
    AuthenticationFailed = 18,
    CannotReuseObject = 19,
    IllegalOperation = 20,
    EmptyArrayOperation = 21,
    InvalidBSON = 22,
    AlreadyInitialized = 23,
    LockTimeout = 24,
    RemoteValidationError = 25,
    NamespaceNotFound = 26,
    IndexNotFound = 27,
    PathNotViable = 28,
    NonExistentPath = 29,
    InvalidPath = 30,
    RoleNotFound = 31,
    RolesNotRelated = 32,
    PrivilegeNotFound = 33,
    CannotBackfillArray = 34,
    UserModificationFailed = 35,
    RemoteChangeDetected = 36,
    FileRenameFailed = 37,
    FileNotOpen = 38,
    FileStreamFailed = 39,
    ConflictingUpdateOperators = 40,
    FileAlreadyOpen = 41,
    LogWriteFailed = 42,
    CursorNotFound = 43,
    UserDataInconsistent = 45,
    LockBusy = 46,
    NoMatchingDocument = 47,
    NamespaceExists = 48,
    InvalidRoleModification = 49,
    MaxTimeMSExpired = 50,
    ManualInterventionRequired = 51,
    DollarPrefixedFieldName = 52,
    InvalidIdField = 53,
    NotSingleValueField = 54,
    InvalidDBRef = 55,
    EmptyFieldName = 56,
    DottedFieldName = 57,
    RoleModificationFailed = 58,
    CommandNotFound = 59,
    ShardKeyNotFound = 61,
    OplogOperationUnsupported = 62,
    StaleShardVersion = 63,
    WriteConcernFailed = 64,
    MultipleErrorsOccurred = 65,
    ImmutableField = 66,
    CannotCreateIndex = 67,
    IndexAlreadyExists = 68,
    AuthSchemaIncompatible = 69,
    ShardNotFound = 70,
    ReplicaSetNotFound = 71,
    InvalidOptions = 72,
    InvalidNamespace = 73,
    NodeNotFound = 74,
    WriteConcernLegacyOK = 75,
    NoReplicationEnabled = 76,
    OperationIncomplete = 77,
    CommandResultSchemaViolation = 78,
    UnknownReplWriteConcern = 79,
    RoleDataInconsistent = 80,
    NoMatchParseContext = 81,
    NoProgressMade = 82,
    RemoteResultsUnavailable = 83,
    IndexOptionsConflict = 85,
    IndexKeySpecsConflict = 86,
    CannotSplit = 87,
    NetworkTimeout = 89,
    CallbackCanceled = 90,
    ShutdownInProgress = 91,
    SecondaryAheadOfPrimary = 92,
    InvalidReplicaSetConfig = 93,
    NotYetInitialized = 94,
    NotSecondary = 95,
    OperationFailed = 96,
    NoProjectionFound = 97,
    DBPathInUse = 98,
    UnsatisfiableWriteConcern = 100,
    OutdatedClient = 101,
    IncompatibleAuditMetadata = 102,
    NewReplicaSetConfigurationIncompatible = 103,
    NodeNotElectable = 104,
    IncompatibleShardingMetadata = 105,
    DistributedClockSkewed = 106,
    LockFailed = 107,
    InconsistentReplicaSetNames = 108,
    ConfigurationInProgress = 109,
    CannotInitializeNodeWithData = 110,
    NotExactValueField = 111,
    WriteConflict = 112,
    InitialSyncFailure = 113,
    InitialSyncOplogSourceMissing = 114,
    CommandNotSupported = 115,
    DocTooLargeForCapped = 116,
    ConflictingOperationInProgress = 117,
    NamespaceNotSharded = 118,
    InvalidSyncSource = 119,
    OplogStartMissing = 120,
    DocumentValidationFailure = 121,
    NotAReplicaSet = 123,
    IncompatibleElectionProtocol = 124,
    CommandFailed = 125,
    RPCProtocolNegotiationFailed = 126,
    UnrecoverableRollbackError = 127,
    LockNotFound = 128,
    LockStateChangeFailed = 129,
    SymbolNotFound = 130,
    FailedToSatisfyReadPreference = 133,
    ReadConcernMajorityNotAvailableYet = 134,
    StaleTerm = 135,
    CappedPositionLost = 136,
    IncompatibleShardingConfigVersion = 137,
    RemoteOplogStale = 138,
    JSInterpreterFailure = 139,
    InvalidSSLConfiguration = 140,
    SSLHandshakeFailed = 141,
    JSUncatchableError = 142,
    CursorInUse = 143,
    IncompatibleCatalogManager = 144,
    PooledConnectionsDropped = 145,
    ExceededMemoryLimit = 146,
    ZLibError = 147,
    ReadConcernMajorityNotEnabled = 148,
    NoConfigPrimary = 149,
    StaleEpoch = 150,
    OperationCannotBeBatched = 151,
    OplogOutOfOrder = 152,
    ChunkTooBig = 153,
    InconsistentShardIdentity = 154,
    CannotApplyOplogWhilePrimary = 155,
    CanRepairToDowngrade = 157,
    MustUpgrade = 158,
    DurationOverflow = 159,
    MaxStalenessOutOfRange = 160,
    IncompatibleCollationVersion = 161,
    CollectionIsEmpty = 162,
    ZoneStillInUse = 163,
    InitialSyncActive = 164,
    ViewDepthLimitExceeded = 165,
    CommandNotSupportedOnView = 166,
    OptionNotSupportedOnView = 167,
    InvalidPipelineOperator = 168,
    CommandOnShardedViewNotSupportedOnMongod = 169,
    TooManyMatchingDocuments = 170,
    CannotIndexParallelArrays = 171,
    TransportSessionClosed = 172,
    TransportSessionNotFound = 173,
    TransportSessionUnknown = 174,
    QueryPlanKilled = 175,
    FileOpenFailed = 176,
    ZoneNotFound = 177,
    RangeOverlapConflict = 178,
    WindowsPdhError = 179,
    BadPerfCounterPath = 180,
    AmbiguousIndexKeyPattern = 181,
    InvalidViewDefinition = 182,
    ClientMetadataMissingField = 183,
    ClientMetadataAppNameTooLarge = 184,
    ClientMetadataDocumentTooLarge = 185,
    ClientMetadataCannotBeMutated = 186,
    LinearizableReadConcernError = 187,
    IncompatibleServerVersion = 188,
    PrimarySteppedDown = 189,
    MasterSlaveConnectionFailure = 190,
    FailPointEnabled = 192,
    NoShardingEnabled = 193,
    BalancerInterrupted = 194,
    ViewPipelineMaxSizeExceeded = 195,
    InvalidIndexSpecificationOption = 197,
    IllegalOpMsgFlag = 223,
    QueryFeatureNotAllowed = 224,
    TransactionTooOld = 225,
    AtomicityFailure = 226,
    CannotImplicitlyCreateCollection = 227,
    SessionTransferIncomplete = 228,
    MustDowngrade = 229,
    DNSHostNotFound = 230,
    DNSProtocolError = 231,
    MaxSubPipelineDepthExceeded = 232,
    TooManyDocumentSequences = 233,
    RetryChangeStream = 234,
    InternalErrorNotSupported = 235,
    ForTestingErrorExtraInfo = 236,
    CursorKilled = 237,
    NotImplemented = 238,
    SnapshotTooOld = 239,
    DNSRecordTypeMismatch = 240,
    ConversionFailure = 241,
    CannotCreateCollection = 242,
    IncompatibleWithUpgradedServer = 243,
    BrokenPromise = 245,
    SnapshotUnavailable = 246,
    ProducerConsumerQueueBatchTooLarge = 247,
    ProducerConsumerQueueEndClosed = 248,
    StaleDbVersion = 249,
    StaleChunkHistory = 250,
    NoSuchTransaction = 251,
    ReentrancyNotAllowed = 252,
    FreeMonHttpInFlight = 253,
    FreeMonHttpTemporaryFailure = 254,
    FreeMonHttpPermanentFailure = 255,
    TransactionCommitted = 256,
    TransactionTooLarge = 257,
    UnknownFeatureCompatibilityVersion = 258,
    KeyedExecutorRetry = 259,
    InvalidResumeToken = 260,
    TooManyLogicalSessions = 261,
    ExceededTimeLimit = 262,
    OperationNotSupportedInTransaction = 263,
    TooManyFilesOpen = 264,
    OrphanedRangeCleanUpFailed = 265,
    FailPointSetFailed = 266,
    PreparedTransactionInProgress = 267,
    CannotBackup = 268,
    DataModifiedByRepair = 269,
    RepairedReplicaSetNode = 270,
    JSInterpreterFailureWithStack = 271,
    MigrationConflict = 272,
    ProducerConsumerQueueProducerQueueDepthExceeded = 273,
    ProducerConsumerQueueConsumed = 274,
    ExchangePassthrough = 275,
    IndexBuildAborted = 276,
    AlarmAlreadyFulfilled = 277,
    UnsatisfiableCommitQuorum = 278,
    ClientDisconnect = 279,
    ChangeStreamFatalError = 280,
    TransactionCoordinatorSteppingDown = 281,
    TransactionCoordinatorReachedAbortDecision = 282,
    WouldChangeOwningShard = 283,
    ForTestingErrorExtraInfoWithExtraInfoInNamespace = 284,
    IndexBuildAlreadyInProgress = 285,
    ChangeStreamHistoryLost = 286,
    TransactionCoordinatorDeadlineTaskCanceled = 287,
    ChecksumMismatch = 288,
    WaitForMajorityServiceEarlierOpTimeAvailable = 289,
    TransactionExceededLifetimeLimitSeconds = 290,
    NoQueryExecutionPlans = 291,
    QueryExceededMemoryLimitNoDiskUseAllowed = 292,
    InvalidSeedList = 293,
    InvalidTopologyType = 294,
    InvalidHeartBeatFrequency = 295,
    TopologySetNameRequired = 296,
    HierarchicalAcquisitionLevelViolation = 297,
    InvalidServerType = 298,
    OCSPCertificateStatusRevoked = 299,
    RangeDeletionAbandonedBecauseCollectionWithUUIDDoesNotExist = 300,
    DataCorruptionDetected = 301,
    OCSPCertificateStatusUnknown = 302,
    SplitHorizonChange = 303,
    ShardInvalidatedForTargeting = 304,
    ReadThroughCacheLookupCanceled = 306,
    RangeDeletionAbandonedBecauseTaskDocumentDoesNotExist = 307,
    CurrentConfigNotCommittedYet = 308,
    ExhaustCommandFinished = 309,
    PeriodicJobIsStopped = 310,
    TransactionCoordinatorCanceled = 311,
    OperationIsKilledAndDelisted = 312,
    ResumableRangeDeleterDisabled = 313,
    ObjectIsBusy = 314,
    TooStaleToSyncFromSource = 315,
    QueryTrialRunCompleted = 316,
    ConnectionPoolExpired = 317,
    ForTestingOptionalErrorExtraInfo = 318,
    MovePrimaryInProgress = 319,
    TenantMigrationConflict = 320,
    TenantMigrationCommitted = 321,
    APIVersionError = 322,
    APIStrictError = 323,
    APIDeprecationError = 324,
    TenantMigrationAborted = 325,
    OplogQueryMinTsMissing = 326,
    NoSuchTenantMigration = 327,
    TenantMigrationAccessBlockerShuttingDown = 328,
    TenantMigrationInProgress = 329,
    SkipCommandExecution = 330,
    FailedToRunWithReplyBuilder = 331,
    CannotDowngrade = 332,
    ServiceExecutorInShutdown = 333,
    MechanismUnavailable = 334,
    TenantMigrationForgotten = 335,
    TimeseriesBucketCleared = 336,
    AuthenticationAbandoned = 337,
    ReshardCollectionInProgress = 338,
    NoSuchReshardCollection = 339,
    ReshardCollectionCommitted = 340,
    ReshardCollectionAborted = 341,
    ReshardingCriticalSectionTimeout = 342,
    ShardCannotRefreshDueToLocksHeld = 343,
    AuditingNotEnabled = 344,
    RuntimeAuditConfigurationNotEnabled = 345,
    ChangeStreamInvalidated = 346,
    APIMismatchError = 347,
    ChangeStreamTopologyChange = 348,
    KeyPatternShorterThanBound = 349,
    ReshardCollectionTruncatedError = 350,
    LocalDatabaseNotInitialized = 351,
    UnsupportedOpQueryCommand = 352,
    TenantMigrationStrictlyDisallowed = 353,
    NoSuchSession = 354,
    CannotConvertIndexToUnique = 359,
    InvalidUUID = 9999,
    MaxBsonObjectSizeExceeded = 10334,
    DuplicateKey = 11000,
    InterruptedAtShutdown = 11600,
    Interrupted = 11601,
    InterruptedDueToReplStateChange = 11602,
    BackgroundOperationInProgressForDatabase = 12586,
    BackgroundOperationInProgressForNamespace = 12587,
    MergeStageNoMatchingDocument = 13113,
    DatabaseDifferCase = 13297,
    StaleConfig = 13388,
    NotWritablePrimary = 10107,
    NotPrimaryNoSecondaryOk = 13435,
    NotPrimaryOrSecondary = 13436,
    OutOfDiskSpace = 14031,
    ClientMarkedKilled = 46841,
    NotARetryableWriteCommand = 50768,
}

impl ErrorCode {
    /// mongod names `BSONObjectTooLarge` with a capital "BSON"; Rust naming
    /// conventions spell the variant differently, so the wire name is fixed here.
    pub const fn wire_name(self) -> &'static str {
        match self {
            ErrorCode::MaxBsonObjectSizeExceeded => "BSONObjectTooLarge",
            other => other.name(),
        }
    }
}

/// The error labels drivers act upon.
pub mod labels {
    /// Drivers resume a change stream after an error carrying it.
    pub const RESUMABLE_CHANGE_STREAM_ERROR: &str = "ResumableChangeStreamError";
    /// Drivers never resume a change stream after an error carrying it.
    pub const NON_RESUMABLE_CHANGE_STREAM_ERROR: &str = "NonResumableChangeStreamError";
    /// Drivers retry a write after an error carrying it.
    pub const RETRYABLE_WRITE_ERROR: &str = "RetryableWriteError";
    /// Drivers retry the whole transaction after an error carrying it.
    pub const TRANSIENT_TRANSACTION_ERROR: &str = "TransientTransactionError";
    /// The outcome of a `commitTransaction` is unknown: drivers retry the commit.
    pub const UNKNOWN_TRANSACTION_COMMIT_RESULT: &str = "UnknownTransactionCommitResult";
}

/// The error categories drivers act upon, with their exact code lists. Numbers without a
/// name in [`ErrorCode`] (9001 SocketException) are spelled out here.
pub mod category {
    use super::ErrorCode;

    /// mongod's SocketException, a network error (not in [`ErrorCode`]: a failpoint's
    /// error with it is still sent as `Location9001`).
    pub const SOCKET_EXCEPTION: i32 = 9001;

    /// The retryable writes specification's codes ("Determining Retryable Errors"):
    /// a driver talking to a pre-4.4 server labels an error with one of them
    /// `RetryableWriteError`; mongod 4.4+ (and Eddy) label it themselves, for a
    /// retryable write.
    pub const RETRYABLE_WRITE: &[i32] = &[
        ErrorCode::InterruptedAtShutdown.code(),
        ErrorCode::InterruptedDueToReplStateChange.code(),
        ErrorCode::NotWritablePrimary.code(),
        ErrorCode::NotPrimaryNoSecondaryOk.code(),
        ErrorCode::NotPrimaryOrSecondary.code(),
        ErrorCode::PrimarySteppedDown.code(),
        ErrorCode::ShutdownInProgress.code(),
        ErrorCode::HostNotFound.code(),
        ErrorCode::HostUnreachable.code(),
        ErrorCode::NetworkTimeout.code(),
        SOCKET_EXCEPTION,
        ErrorCode::ExceededTimeLimit.code(),
    ];

    /// The change streams specification's resumable codes ("Resumable Error"): the
    /// list for servers before 4.4 (wire version < 9), which do not label errors, plus
    /// 43 CursorNotFound, resumable with every server. Eddy labels a getMore error with
    /// one of them `ResumableChangeStreamError`, as mongod 4.4+ labels its own.
    pub const RESUMABLE_CHANGE_STREAM: &[i32] = &[
        ErrorCode::HostUnreachable.code(),
        ErrorCode::HostNotFound.code(),
        ErrorCode::NetworkTimeout.code(),
        ErrorCode::ShutdownInProgress.code(),
        ErrorCode::PrimarySteppedDown.code(),
        ErrorCode::ExceededTimeLimit.code(),
        SOCKET_EXCEPTION,
        ErrorCode::NotWritablePrimary.code(),
        ErrorCode::InterruptedAtShutdown.code(),
        ErrorCode::InterruptedDueToReplStateChange.code(),
        ErrorCode::NotPrimaryNoSecondaryOk.code(),
        ErrorCode::NotPrimaryOrSecondary.code(),
        ErrorCode::StaleShardVersion.code(),
        ErrorCode::StaleEpoch.code(),
        ErrorCode::StaleConfig.code(),
        ErrorCode::RetryChangeStream.code(),
        ErrorCode::FailedToSatisfyReadPreference.code(),
        ErrorCode::CursorNotFound.code(),
    ];

    /// mongod's `NonResumableChangeStreamError` category (`error_codes.yml`): errors
    /// after which a change stream cannot continue, labelled
    /// `NonResumableChangeStreamError`. The change streams specification itself lists no
    /// codes: drivers go by the label.
    pub const NON_RESUMABLE_CHANGE_STREAM: &[i32] = &[
        ErrorCode::ChangeStreamFatalError.code(),
        ErrorCode::ChangeStreamHistoryLost.code(),
    ];

    /// mongod's `NotPrimaryError` category (`error_codes.yml`): the errors of a node
    /// that is not (or no longer) primary. mongod's replies with one of them, as an
    /// error or a `writeConcernError`, carry its `topologyVersion`, so that a driver can
    /// tell a stale one from news (the SDAM specification's error handling).
    pub const NOT_PRIMARY: &[i32] = &[
        ErrorCode::NotWritablePrimary.code(),
        ErrorCode::NotPrimaryNoSecondaryOk.code(),
        ErrorCode::NotPrimaryOrSecondary.code(),
        ErrorCode::InterruptedDueToReplStateChange.code(),
        ErrorCode::PrimarySteppedDown.code(),
    ];

    /// Whether `code` is in [`NOT_PRIMARY`].
    pub fn is_not_primary(code: i32) -> bool {
        NOT_PRIMARY.contains(&code)
    }

    /// Whether mongod labels an error of a command in a transaction
    /// `TransientTransactionError` (its `isTransientTransactionError`): write conflicts,
    /// lock timeouts, prepared transactions, snapshot and routing errors, and
    /// NoSuchTransaction (on `commitTransaction`/`abortTransaction` only without a write
    /// concern error: the data might otherwise be rolled back).
    pub fn is_transient_transaction_error(
        code: i32,
        commit_or_abort: bool,
        write_concern_error: bool,
    ) -> bool {
        const TRANSIENT: &[ErrorCode] = &[
            ErrorCode::WriteConflict,
            ErrorCode::LockTimeout,
            ErrorCode::PreparedTransactionInProgress,
            ErrorCode::ShardCannotRefreshDueToLocksHeld,
            // Snapshot errors.
            ErrorCode::SnapshotTooOld,
            ErrorCode::SnapshotUnavailable,
            ErrorCode::StaleChunkHistory,
            ErrorCode::MigrationConflict,
            // Routing errors.
            ErrorCode::StaleShardVersion,
            ErrorCode::StaleEpoch,
            ErrorCode::StaleConfig,
            ErrorCode::StaleDbVersion,
        ];
        let transient = code == ErrorCode::NoSuchTransaction.code()
            || TRANSIENT.iter().any(|c| c.code() == code);
        transient && !(commit_or_abort && write_concern_error)
    }

    /// Whether drivers retry a write that failed with `code` ([`RETRYABLE_WRITE`]).
    pub fn is_retryable_write(code: i32) -> bool {
        RETRYABLE_WRITE.contains(&code)
    }

    /// Whether a change stream resumes after a getMore failed with `code`
    /// ([`RESUMABLE_CHANGE_STREAM`]).
    pub fn is_resumable_change_stream(code: i32) -> bool {
        RESUMABLE_CHANGE_STREAM.contains(&code)
    }

    /// Whether a change stream can never continue after `code`
    /// ([`NON_RESUMABLE_CHANGE_STREAM`]).
    pub fn is_non_resumable_change_stream(code: i32) -> bool {
        NON_RESUMABLE_CHANGE_STREAM.contains(&code)
    }
}

/// mongod's unnamed assertion codes (`Location<N>`, raised with
/// [`MongoError::location`]) that Eddy raises from several places.
pub mod location {
    /// An IDL-parsed command or stage with a field it does not define: "BSON field
    /// '<command>.<field>' is an unknown field.".
    pub const UNKNOWN_FIELD: i32 = 40415;
    /// An IDL-parsed command or stage without a required field: "BSON field
    /// '<command>.<field>' is missing but a required field".
    pub const MISSING_FIELD: i32 = 40414;
    /// An IDL field below the least value its validator allows ("BSON field
    /// 'batchSize' value must be >= 0, actual value '-1'").
    pub const VALUE_BELOW_MINIMUM: i32 = 51024;
    /// A pipeline stage name mongod does not know: "Unrecognized pipeline stage name".
    pub const UNRECOGNIZED_STAGE: i32 = 40324;
    /// A stage that must come first in a pipeline elsewhere ("$changeStream is only
    /// valid as the first stage in a pipeline").
    pub const STAGE_NOT_FIRST: i32 = 40602;
    /// A stage not allowed inside `$facet`.
    pub const STAGE_NOT_ALLOWED_IN_FACET: i32 = 40600;
    /// A field path with an empty component: "FieldPath field names may not be empty
    /// strings.".
    pub const FIELD_PATH_EMPTY_COMPONENT: i32 = 15998;
    /// A field path component starting with `$`: "FieldPath field names may not start
    /// with '$'.".
    pub const FIELD_PATH_DOLLAR_PREFIX: i32 = 16410;
}

/// An error as a MongoDB client sees it: `ok: 0` with `errmsg`, `code`,
/// `codeName` and optional `errorLabels`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct MongoError {
    /// The numeric code (`code`).
    pub code: i32,
    /// The message (`errmsg`).
    pub message: String,
    /// Labels such as `ResumableChangeStreamError`.
    pub labels: Vec<String>,
    /// Fields mongod adds beside the code for some errors (e.g. `keyPattern` and
    /// `keyValue` for a duplicate key).
    pub extra: Option<Document>,
}

impl fmt::Display for MongoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code_name(), self.code, self.message)
    }
}

impl MongoError {
    /// An error with a named code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        MongoError {
            code: code.code(),
            message: message.into(),
            labels: Vec::new(),
            extra: None,
        }
    }

    /// An error with an unnamed mongod assertion code (`Location<N>`), such as
    /// 40324 for an unknown pipeline stage.
    pub fn location(code: i32, message: impl Into<String>) -> Self {
        MongoError {
            code,
            message: message.into(),
            labels: Vec::new(),
            extra: None,
        }
    }

    /// Adds an error label.
    pub fn with_label(mut self, label: &str) -> Self {
        if !self.labels.iter().any(|l| l == label) {
            self.labels.push(label.to_owned());
        }
        self
    }

    /// Adds fields that are sent beside `code` (merged into the reply).
    pub fn with_extra(mut self, extra: Document) -> Self {
        self.extra.get_or_insert_with(Document::new).extend(extra);
        self
    }

    /// The named code, if this code has a name.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// Whether this error has the given named code.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code.code()
    }

    /// `codeName` as mongod sends it: the name, or `Location<N>` for unnamed codes.
    pub fn code_name(&self) -> Cow<'static, str> {
        match ErrorCode::from_code(self.code) {
            Some(code) => Cow::Borrowed(code.wire_name()),
            None => Cow::Owned(format!("Location{}", self.code)),
        }
    }

    /// The fields of a command reply for this error (`ok: 0`, `errmsg`, `code`,
    /// `codeName`, `errorLabels` when there are any, then the extra fields).
    pub fn to_reply(&self) -> Document {
        let mut reply = doc! {
            "ok": 0.0,
            "errmsg": self.message.clone(),
            "code": self.code,
            "codeName": self.code_name().into_owned(),
        };
        if let Some(extra) = &self.extra {
            for (k, v) in extra {
                reply.insert(k.clone(), v.clone());
            }
        }
        if !self.labels.is_empty() {
            reply.insert("errorLabels", self.labels.clone());
        }
        reply
    }

    /// The entry of a `writeErrors` array for this error at batch position `index`.
    pub fn to_write_error(&self, index: usize) -> Document {
        let mut entry = doc! {
            "index": index as i32,
            "code": self.code,
        };
        if let Some(extra) = &self.extra {
            for (k, v) in extra {
                entry.insert(k.clone(), v.clone());
            }
        }
        entry.insert("errmsg", self.message.clone());
        entry
    }
}

/// Shorthand constructors for the errors raised most often.
impl MongoError {
    pub fn bad_value(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadValue, message)
    }
    pub fn type_mismatch(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TypeMismatch, message)
    }
    pub fn failed_to_parse(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedToParse, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
    /// mongod's error for an operation past its `maxTimeMS`.
    pub fn max_time_expired() -> Self {
        Self::new(ErrorCode::MaxTimeMSExpired, "operation exceeded time limit")
    }
}

/// When an operation with a `maxTimeMS` gives up: long-running loops (scans, pipeline
/// stages) call [`Deadline::check`] now and then, so the work stops instead of running on
/// after the client has been answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub std::time::Instant);

impl Deadline {
    /// 50 MaxTimeMSExpired once the deadline has passed.
    pub fn check(self) -> Result<()> {
        match std::time::Instant::now() >= self.0 {
            true => Err(MongoError::max_time_expired()),
            false => Ok(()),
        }
    }

    /// [`Deadline::check`] for an optional deadline (`None`: no limit).
    pub fn check_opt(deadline: Option<Deadline>) -> Result<()> {
        deadline.map_or(Ok(()), Deadline::check)
    }
}

/// Results across Eddy's library crates.
pub type Result<T, E = MongoError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        assert_eq!(ErrorCode::CommandNotFound.code(), 59);
        assert_eq!(
            ErrorCode::from_code(286),
            Some(ErrorCode::ChangeStreamHistoryLost)
        );
        assert_eq!(
            ErrorCode::MaxBsonObjectSizeExceeded.wire_name(),
            "BSONObjectTooLarge"
        );
    }

    #[test]
    fn unnamed_codes_are_locations() {
        let err = MongoError::location(40324, "Unrecognized pipeline stage name: '$foo'");
        assert_eq!(err.code_name(), "Location40324");
        let reply = err.to_reply();
        assert_eq!(reply.get_i32("code").ok(), Some(40324));
        assert_eq!(reply.get_f64("ok").ok(), Some(0.0));
    }

    #[test]
    fn categories_hold_the_specifications_codes() {
        let mut retryable = category::RETRYABLE_WRITE.to_vec();
        retryable.sort_unstable();
        assert_eq!(
            retryable,
            [6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]
        );
        let mut resumable = category::RESUMABLE_CHANGE_STREAM.to_vec();
        resumable.sort_unstable();
        assert_eq!(
            resumable,
            [
                6, 7, 43, 63, 89, 91, 133, 150, 189, 234, 262, 9001, 10107, 11600, 11602, 13388,
                13435, 13436
            ]
        );
        assert!(category::is_retryable_write(91));
        assert!(!category::is_retryable_write(43));
        assert!(category::is_resumable_change_stream(43));
        assert!(!category::is_resumable_change_stream(286));
        assert!(category::is_non_resumable_change_stream(286));
        assert!(category::is_non_resumable_change_stream(280));
        assert!(!category::is_non_resumable_change_stream(260));
    }

    #[test]
    fn labels_are_sent() {
        let err = MongoError::new(ErrorCode::ChangeStreamHistoryLost, "gone")
            .with_label(labels::NON_RESUMABLE_CHANGE_STREAM_ERROR);
        let reply = err.to_reply();
        assert_eq!(
            reply.get_array("errorLabels").ok().map(|a| a.len()),
            Some(1)
        );
    }
}
