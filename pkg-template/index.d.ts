// Types of qdrant-edge-wasm. Request bodies and results have the shapes of Qdrant's REST API
// (the body of the HTTP request, and the `result` field of the response).

// ---------------------------------------------------------------- errors

export type QdrantEdgeErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'corrupted'
  | 'unsupported'
  | 'io'
  | 'shard_closed'
  | 'internal'
  /** A Qdrant server refused the api-key (HTTP 401, or 403: e.g. a read-only key asking for a snapshot). */
  | 'unauthorized'
  /** Any other non-2xx answer of a Qdrant server (after the retries, for transient ones). */
  | 'remote';

/** Every failure of this package: `name` is "QdrantEdgeError", `code` says what kind. */
export declare class QdrantEdgeError extends Error {
  constructor(code: QdrantEdgeErrorCode, message: string, status?: number);
  readonly name: 'QdrantEdgeError';
  readonly code: QdrantEdgeErrorCode;
  /** The HTTP status of the Qdrant server's answer, for errors of restoreFromServer / pullFromServer. */
  readonly status?: number;
}

// ---------------------------------------------------------------- configuration

export type Distance = 'Cosine' | 'Euclid' | 'Dot' | 'Manhattan';
export type Datatype = 'float32' | 'float16' | 'uint8';

export interface HnswConfig {
  m?: number;
  ef_construct?: number;
  full_scan_threshold?: number;
  max_indexing_threads?: number;
  on_disk?: boolean;
  payload_m?: number;
  [key: string]: unknown;
}

export type QuantizationConfig =
  | { scalar: { type: 'int8'; quantile?: number; always_ram?: boolean } }
  | { product: { compression: 'x4' | 'x8' | 'x16' | 'x32' | 'x64'; always_ram?: boolean } }
  | { binary: { always_ram?: boolean; encoding?: string; query_encoding?: string } };

export interface VectorParams {
  size: number;
  distance: Distance;
  on_disk?: boolean;
  datatype?: Datatype;
  multivector_config?: { comparator: 'max_sim' };
  hnsw_config?: HnswConfig;
  quantization_config?: QuantizationConfig;
  [key: string]: unknown;
}

export interface SparseVectorParams {
  modifier?: 'none' | 'idf';
  full_scan_threshold?: number;
  on_disk?: boolean;
  datatype?: Datatype;
  [key: string]: unknown;
}

/** The shape of a shard's `edge_config.json`. */
export interface EdgeConfig {
  /** Named dense vectors; the unnamed (default) vector is the name "". */
  vectors?: { [key: string]: VectorParams };
  sparse_vectors?: { [key: string]: SparseVectorParams };
  on_disk_payload?: boolean;
  hnsw_config?: HnswConfig;
  quantization_config?: QuantizationConfig;
  optimizers?: { [key: string]: unknown };
  wal_options?: { [key: string]: unknown };
  wal_enabled?: boolean;
  [key: string]: unknown;
}

// ---------------------------------------------------------------- points

/**
 * An unsigned integer or a UUID string. Unsigned integer ids past `Number.MAX_SAFE_INTEGER` (2^53 - 1) are `bigint`s in results, and
 * may be given as `bigint`s in requests (so are other integers past 2^53, e.g. in payloads).
 */
export type ExtendedPointId = number | bigint | string;
export type Payload = { [key: string]: unknown };

export interface SparseVector {
  indices: number[];
  values: number[];
}

export type DenseVector = number[];
export type MultiDenseVector = number[][];
/**
 * A dense vector in a request: a number array, or a `Float32Array` / `Float64Array` holding the
 * same numbers (taken in one copy; results always hold number arrays).
 */
export type DenseVectorInput = number[] | Float32Array | Float64Array;
export type MultiDenseVectorInput = DenseVectorInput[];
export type VectorInput = DenseVectorInput | SparseVector | MultiDenseVectorInput;
/** A point's vectors: one unnamed dense vector, or vectors by name. */
export type VectorStruct = DenseVectorInput | MultiDenseVectorInput | { [key: string]: VectorInput };

export interface PointStruct {
  id: ExtendedPointId;
  vector: VectorStruct;
  payload?: Payload | null;
}

export type WithPayload = boolean | string[] | { include: string[] } | { exclude: string[] };
export type WithVector = boolean | string[];

// ---------------------------------------------------------------- filters

export type MatchValue = string | number | boolean;

export type Match =
  | { value: MatchValue }
  | { text: string }
  | { phrase: string }
  | { text_any: string }
  | { any: string[] | number[] }
  | { except: string[] | number[] };

export interface Range {
  lt?: number | null;
  gt?: number | null;
  gte?: number | null;
  lte?: number | null;
}

/** RFC 3339 timestamps. */
export interface DatetimeRange {
  lt?: string | null;
  gt?: string | null;
  gte?: string | null;
  lte?: string | null;
}

export interface GeoPoint {
  lon: number;
  lat: number;
}

export interface FieldCondition {
  key: string;
  match?: Match;
  range?: Range | DatetimeRange;
  geo_bounding_box?: { top_left: GeoPoint; bottom_right: GeoPoint };
  geo_radius?: { center: GeoPoint; radius: number };
  geo_polygon?: { exterior: { points: GeoPoint[] }; interiors?: { points: GeoPoint[] }[] };
  values_count?: Range;
  is_empty?: boolean;
  is_null?: boolean;
}

export interface IsEmptyCondition {
  is_empty: { key: string };
}
export interface IsNullCondition {
  is_null: { key: string };
}
export interface HasIdCondition {
  has_id: ExtendedPointId[];
}
export interface HasVectorCondition {
  has_vector: string;
}
export interface NestedCondition {
  nested: { key: string; filter: Filter };
}

export type Condition =
  | FieldCondition
  | IsEmptyCondition
  | IsNullCondition
  | HasIdCondition
  | HasVectorCondition
  | NestedCondition
  | Filter;

export interface MinShould {
  conditions: Condition[];
  min_count: number;
}

export interface Filter {
  must?: Condition | Condition[] | null;
  should?: Condition | Condition[] | null;
  must_not?: Condition | Condition[] | null;
  min_should?: MinShould | null;
}

// ---------------------------------------------------------------- reads

export interface SearchParams {
  hnsw_ef?: number;
  exact?: boolean;
  indexed_only?: boolean;
  quantization?: { ignore?: boolean; rescore?: boolean; oversampling?: number };
  acorn?: { enable?: boolean; max_selectivity?: number };
  /** The points IDF statistics are gathered over (sparse vectors with the `idf` modifier, BM25
   *  text queries): `"global"` (every point, the default) or those passing a filter. */
  idf?: 'global' | { corpus: Filter };
}

/** BM25 over the text index (created with `scoring: true`) of the payload field named by
 *  `using`: the text, or the text with BM25's `k` (default 1.2) and `b` (default 0.75). */
export type TextQuery =
  | string
  | { query: string; scoring?: { bm25: { k?: number; b?: number } } };

export interface OrderBy {
  key: string;
  direction?: 'asc' | 'desc';
  /** A number or an RFC 3339 datetime. */
  start_from?: number | string;
}

export type Query =
  | VectorInput
  | ExtendedPointId
  | { nearest: VectorInput | ExtendedPointId }
  | { fusion: 'rrf' | 'dbsf' }
  | { rrf: { k?: number; weights?: number[] } }
  | { order_by: string | OrderBy }
  | { text: TextQuery };

export interface Prefetch {
  prefetch?: Prefetch | Prefetch[];
  query?: Query;
  using?: string;
  filter?: Filter;
  params?: SearchParams;
  score_threshold?: number;
  limit?: number;
}

/** `POST /collections/{c}/points/query` */
export interface QueryRequest {
  prefetch?: Prefetch | Prefetch[];
  query?: Query;
  using?: string;
  filter?: Filter;
  params?: SearchParams;
  score_threshold?: number;
  limit?: number;
  offset?: number;
  with_vector?: WithVector;
  with_payload?: WithPayload;
}

/** `POST /collections/{c}/points/query/batch` */
export interface QueryBatchRequest {
  searches: QueryRequest[];
}

/** `POST /collections/{c}/points/search` (the legacy search API) */
export interface SearchRequest {
  /** The unnamed vector, or `{name, vector}`. */
  vector: DenseVectorInput | { name: string; vector: DenseVectorInput | SparseVector };
  filter?: Filter;
  params?: SearchParams;
  limit: number;
  offset?: number;
  with_payload?: WithPayload;
  with_vector?: WithVector;
  score_threshold?: number;
}

/** `POST /collections/{c}/points/scroll` */
export interface ScrollRequest {
  offset?: ExtendedPointId;
  limit?: number;
  filter?: Filter;
  with_payload?: WithPayload;
  with_vector?: WithVector;
  order_by?: string | OrderBy;
}

/** `POST /collections/{c}/points/count` */
export interface CountRequest {
  filter?: Filter;
  exact?: boolean;
}

/** `POST /collections/{c}/facet` */
export interface FacetRequest {
  key: string;
  limit?: number;
  filter?: Filter;
  exact?: boolean;
}

/** `POST /collections/{c}/points` */
export interface RetrieveRequest {
  ids: ExtendedPointId[];
  with_payload?: WithPayload;
  with_vector?: WithVector;
}

export type VectorOutput = DenseVector | SparseVector | MultiDenseVector;

export interface ScoredPoint {
  id: ExtendedPointId;
  version?: number;
  score: number;
  payload?: Payload | null;
  vector?: VectorOutput | { [key: string]: VectorOutput } | null;
  order_value?: number | null;
}

/** A point as retrieve and scroll return it (Qdrant's `Record`). */
export interface Record {
  id: ExtendedPointId;
  payload?: Payload | null;
  vector?: VectorOutput | { [key: string]: VectorOutput } | null;
  order_value?: number | null;
}

export type PointRecord = Record;

export interface QueryResponse {
  points: ScoredPoint[];
}

export interface ScrollResult {
  points: Record[];
  next_page_offset: ExtendedPointId | null;
}

export interface CountResult {
  count: number;
}

export interface FacetHit {
  value: string | number | boolean;
  count: number;
}

export interface FacetResponse {
  hits: FacetHit[];
}

/** Shard statistics (loosely typed: the fields follow Qdrant's collection info). */
export interface ShardInfo {
  points_count: number;
  segments_count: number;
  indexed_vectors_count?: number;
  payload_schema?: { [field: string]: { data_type: string; params?: unknown; points?: number } };
  [key: string]: unknown;
}

// ---------------------------------------------------------------- updates

export interface UpdateResult {
  operation_id: number | null;
  status: 'acknowledged' | 'completed';
}

export type PointsSelector = { points: ExtendedPointId[] } | { filter: Filter };

/** `PUT /collections/{c}/points` */
export type UpsertRequest = (
  | { points: PointStruct[] }
  | {
      batch: {
        ids: ExtendedPointId[];
        vectors: DenseVectorInput[] | MultiDenseVectorInput[] | { [name: string]: VectorInput[] };
        payloads?: (Payload | null)[] | null;
      };
    }
) & { update_filter?: Filter; update_mode?: 'upsert' | 'insert_only' | 'update_only' };

/** `POST /collections/{c}/points/delete` */
export type DeleteRequest = PointsSelector;

/** `POST /collections/{c}/points/payload` (set) and `PUT` (overwrite) */
export interface SetPayloadRequest {
  payload: Payload;
  points?: ExtendedPointId[];
  filter?: Filter;
  /** Set under this nested key instead of the payload's root. */
  key?: string;
}

/** `POST /collections/{c}/points/payload/delete` */
export interface DeletePayloadRequest {
  keys: string[];
  points?: ExtendedPointId[];
  filter?: Filter;
}

/** `POST /collections/{c}/points/payload/clear` */
export type ClearPayloadRequest = PointsSelector;

/** `PUT /collections/{c}/points/vectors` */
export interface UpdateVectorsRequest {
  points: { id: ExtendedPointId; vector: VectorStruct }[];
  update_filter?: Filter;
}

/** `POST /collections/{c}/points/vectors/delete` */
export interface DeleteVectorsRequest {
  vector: string[];
  points?: ExtendedPointId[];
  filter?: Filter;
}

export type PayloadSchemaType = 'keyword' | 'integer' | 'float' | 'geo' | 'text' | 'bool' | 'datetime' | 'uuid';

/** `PUT /collections/{c}/index` */
export interface CreateIndexRequest {
  field_name: string;
  field_schema: PayloadSchemaType | ({ type: PayloadSchemaType } & { [param: string]: unknown });
}

/** `DELETE /collections/{c}/index/{field_name}`: the field name. */
export type DeleteIndexRequest = string | { field_name: string };

/** One operation of `POST /collections/{c}/points/batch`. */
export type UpdateOperation =
  | { upsert: UpsertRequest }
  | { delete: DeleteRequest }
  | { set_payload: SetPayloadRequest }
  | { overwrite_payload: SetPayloadRequest }
  | { delete_payload: DeletePayloadRequest }
  | { clear_payload: ClearPayloadRequest }
  | { update_vectors: UpdateVectorsRequest }
  | { delete_vectors: DeleteVectorsRequest };

/** `POST /collections/{c}/points/batch` */
export interface UpdateBatchRequest {
  operations: UpdateOperation[];
}

// ---------------------------------------------------------------- snapshots

export interface SnapshotReport {
  kind: 'full' | 'partial';
  /** Ids of the segments that did not exist locally. */
  segments_added: string[];
  /** Ids of the local segments the snapshot no longer has. */
  segments_removed: string[];
  /** Ids of the segments updated in place (partial snapshots). */
  segments_merged: string[];
  files_written: number;
  files_deleted: number;
  archive_bytes: number;
  sha256: string;
}

/** What a Qdrant server needs to build a partial snapshot for this shard. */
export type SnapshotManifest = { [key: string]: unknown };

export type SnapshotSource = ReadableStream<Uint8Array> | Blob | ArrayBuffer | Uint8Array;

export interface SnapshotProgress {
  /** Archive bytes the shard has taken so far. */
  received: number;
  /** The archive's size when the source knows it (not for a ReadableStream). */
  total?: number;
}

export interface SnapshotOptions {
  /** Expected SHA-256 of the archive (hex); a mismatch fails with `invalid_argument` before anything is committed. */
  sha256?: string;
  onProgress?: (progress: SnapshotProgress) => void;
  /** Aborting stops the transfer: the shard is left as it was. */
  signal?: AbortSignal;
  /**
   * Browser only, ArrayBuffer/Uint8Array sources spanning their whole buffer: hand the buffer
   * to the worker in one message without a copy. The caller's buffer is detached after.
   */
  transfer?: boolean;
}

// ---------------------------------------------------------------- the shard

/**
 * "opfs": Origin Private File System through sync access handles in the shard's Worker
 * (durable; every acknowledged update is flushed). "idb": IndexedDB (durable; each
 * acknowledged call is one strict transaction). "memory": nothing persists. One writer per
 * shard: a second open of the same shard (another tab or worker) rejects with code "io".
 * "fs" (Node only): a Qdrant shard directory on disk, `name` being its path (every acknowledged
 * update is fsynced; one writer per directory across processes, through a lock file). Node
 * supports "fs" and "memory".
 */
export type StorageKind = 'idb' | 'memory' | 'opfs' | 'fs';

export interface OpenOptions {
  /** Default: "idb" in browsers, "memory" in Node. */
  storage?: StorageKind;
  name: string;
  /** With a config a missing shard is created; without one the shard must exist. */
  config?: EdgeConfig | null;
  /** Browser only: where worker.js is served, if bundling moved it. */
  workerUrl?: string | URL;
  /** Dual-write: record every update in the shard's durable outbox and send it to this server. */
  outbox?: OutboxRemote | null;
}

/** Where the outbox sends local updates (Qdrant's REST API). */
export interface OutboxRemote {
  /** The server's base URL, e.g. "https://qdrant.example.com:6333". */
  url: string;
  collection: string;
  /** Sent as the `api-key` header. */
  apiKey?: string;
  headers?: { [name: string]: string };
  /** Point operations per `POST /points/batch` request (default 256). */
  batchSize?: number;
  /** Send in the background after each update, retrying with backoff (default true). */
  auto?: boolean;
}

export interface OutboxEntry {
  seq: number;
  command:
    | 'upsert'
    | 'delete'
    | 'set_payload'
    | 'overwrite_payload'
    | 'delete_payload'
    | 'clear_payload'
    | 'update_vectors'
    | 'delete_vectors'
    | 'create_index'
    | 'delete_index';
  body: { [key: string]: unknown };
}

export interface RejectedOutboxEntry extends OutboxEntry {
  /** What the server answered. */
  error: string;
}

export interface OutboxStatus {
  /** Whether updates are recorded (stays on across reopens once enabled). */
  enabled: boolean;
  /** Entries not yet acknowledged by the server. */
  pending: number;
  /** The last acknowledged `seq`. */
  acked: number;
  remote: { url: string; collection: string } | null;
  /** Entries delivered since open. */
  sent: number;
  /** The last refused entries (at most 100), acknowledged and skipped. */
  rejected: RejectedOutboxEntry[];
  lastError: { code: QdrantEdgeErrorCode; message: string } | null;
  /** Sending stopped on a configuration error (unauthorized, unknown collection). */
  stopped: boolean;
  /** The backoff before the next automatic retry (0: none scheduled). */
  retryInMs: number;
}

export interface RestoreOptions extends SnapshotOptions {
  storage?: StorageKind;
  name: string;
  source: SnapshotSource;
  workerUrl?: string | URL;
}

/** Where a shard lives on a Qdrant server, and how to reach it. */
export interface ServerOptions {
  /** The server's REST base URL, e.g. "https://xyz.cloud.qdrant.io:6333" (a path prefix is kept). */
  url: string | URL;
  collection: string;
  /** The shard id in the collection. Default 0 (a single-shard collection). */
  shard?: number;
  /** Sent as the `api-key` header. Snapshots need a key with write access (a read-only key gets 403). */
  apiKey?: string;
  /** More request headers (e.g. a proxy's). */
  headers?: HeadersInit;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /**
   * How many times, in all, a failed request or a broken download is tried again (network
   * failures, HTTP 408/429/500/502/503/504), with exponential backoff. Default 3.
   */
  retries?: number;
  /** The first backoff in milliseconds (doubled at each retry, at most 8 s). Default 500. */
  retryDelay?: number;
}

export interface RemoteProgress {
  /** Archive bytes the shard has taken so far (starts again from 0 if a download had to restart). */
  received: number;
  /** The archive's size when known (a named snapshot's size; not for a compressed partial snapshot). */
  total?: number;
}

export interface RestoreFromServerOptions extends ServerOptions {
  storage?: StorageKind;
  name: string;
  onProgress?: (progress: RemoteProgress) => void;
  /** Aborts the requests, the backoff waits and the restore: nothing is left under `name`. */
  signal?: AbortSignal;
  /** Keep the named snapshot on the server (default: deleted once the download is over). */
  keepSnapshot?: boolean;
  workerUrl?: string | URL;
}

export interface PullOptions extends ServerOptions {
  onProgress?: (progress: RemoteProgress) => void;
  /** Aborts the requests and the apply: the shard is left as it was. */
  signal?: AbortSignal;
  /** Download and apply a full snapshot (resumable) instead of asking for a partial one. */
  full?: boolean;
  /** With `full`: keep the named snapshot on the server. */
  keepSnapshot?: boolean;
}

export type PullResult = { changed: false; report: null } | { changed: true; report: SnapshotReport };

export interface DestroyOptions {
  storage?: StorageKind;
  name: string;
  workerUrl?: string | URL;
}

export declare class EdgeShard {
  private constructor();
  /** Open (or, with `config`, create) a shard. In browsers it runs in its own Worker. */
  static open(options: OpenOptions): Promise<EdgeShard>;
  /** Restore a full or partial Qdrant snapshot into a new shard `name`. */
  static restoreSnapshot(options: RestoreOptions): Promise<EdgeShard>;
  /**
   * Download a full snapshot of a shard from a Qdrant server and restore it into a new shard
   * `name`: the server makes a named shard snapshot, the download resumes after a broken
   * connection (HTTP ranges), the archive is checked against the server's SHA-256, and the
   * snapshot is deleted on the server afterwards.
   */
  static restoreFromServer(options: RestoreFromServerOptions): Promise<EdgeShard>;
  /** Delete every byte of shard `name`. */
  static destroy(options: DestroyOptions): Promise<void>;

  readonly storage: StorageKind;
  readonly name: string;

  info(): Promise<ShardInfo>;
  /** Enable the outbox (if needed) and send it to `remote`; null stops sending (recording goes on). */
  setOutboxRemote(remote: OutboxRemote | null): Promise<void>;
  /** Send the outbox now; resolves once it is empty. */
  syncOutbox(): Promise<{ sent: number; rejected: RejectedOutboxEntry[] }>;
  outboxStatus(): Promise<OutboxStatus>;
  /** Pending entries, oldest first. */
  outboxPending(options?: { max?: number }): Promise<OutboxEntry[]>;
  query(body: QueryRequest): Promise<QueryResponse>;
  queryBatch(body: QueryBatchRequest): Promise<QueryResponse[]>;
  search(body: SearchRequest): Promise<ScoredPoint[]>;
  scroll(body?: ScrollRequest): Promise<ScrollResult>;
  count(body?: CountRequest): Promise<CountResult>;
  facet(body: FacetRequest): Promise<FacetResponse>;
  retrieve(body: RetrieveRequest): Promise<Record[]>;

  /** Updates resolve once durable (idb: committed in one IndexedDB transaction). */
  upsert(body: UpsertRequest): Promise<UpdateResult>;
  update(body: UpdateBatchRequest): Promise<UpdateResult[]>;
  delete(body: DeleteRequest): Promise<UpdateResult>;
  setPayload(body: SetPayloadRequest): Promise<UpdateResult>;
  overwritePayload(body: SetPayloadRequest): Promise<UpdateResult>;
  deletePayload(body: DeletePayloadRequest): Promise<UpdateResult>;
  clearPayload(body: ClearPayloadRequest): Promise<UpdateResult>;
  updateVectors(body: UpdateVectorsRequest): Promise<UpdateResult>;
  deleteVectors(body: DeleteVectorsRequest): Promise<UpdateResult>;
  createIndex(body: CreateIndexRequest): Promise<UpdateResult>;
  deleteIndex(body: DeleteIndexRequest): Promise<UpdateResult>;

  flush(): Promise<void>;
  /** Run the optimizers; resolves to whether any segment changed. */
  optimize(): Promise<boolean>;
  snapshotManifest(): Promise<SnapshotManifest>;
  /** Apply a full or partial snapshot; the shard keeps answering until it commits. */
  applySnapshot(source: SnapshotSource, options?: SnapshotOptions): Promise<SnapshotReport>;
  /**
   * Bring the shard up to date from a Qdrant server: its manifest goes to
   * `POST /collections/{collection}/shards/{shard}/snapshot/partial/create`, and the partial
   * snapshot the server answers with is applied. Resolves to `{changed: false}` when the server
   * answers 304 (nothing changed). No fallback to a full snapshot: pass `full: true` for one.
   */
  pullFromServer(options: PullOptions): Promise<PullResult>;
  /** Flush, commit and release the shard (and its worker). Later calls: "shard_closed". */
  close(): Promise<void>;
}

export default EdgeShard;
