export type QoS = 0 | 1;
export type Packet = {
    type: "connack";
    sessionPresent: boolean;
    returnCode: number;
} | {
    type: "suback";
    packetId: number;
    granted: number[];
} | {
    type: "unsuback";
    packetId: number;
} | {
    type: "publish";
    topic: string;
    payload: Uint8Array;
    qos: QoS;
    dup: boolean;
    retain: boolean;
    packetId?: number;
} | {
    type: "puback";
    packetId: number;
} | {
    type: "pingresp";
};
/** AWS IoT's largest packet (128 KiB payload plus headers). */
export declare const MAX_PACKET_BYTES: number;
export declare class MqttError extends Error {
}
export declare function encodeConnect(clientId: string, keepAliveSeconds: number, cleanSession: boolean): Uint8Array;
export declare function encodeSubscribe(id: number, filters: {
    topic: string;
    qos: QoS;
}[]): Uint8Array;
export declare function encodePublish(topic: string, payload: Uint8Array, qos: QoS, id?: number, options?: {
    retain?: boolean;
    dup?: boolean;
}): Uint8Array;
export declare function encodePuback(id: number): Uint8Array;
export declare const PINGREQ: Uint8Array<ArrayBuffer>;
export declare const DISCONNECT: Uint8Array<ArrayBuffer>;
/**
 * A streaming decoder: bytes in (as WebSocket messages arrive; a packet may span
 * messages and a message may carry several), packets out. Malformed input throws
 * an `MqttError`; the connection should then be closed.
 */
export declare class Decoder {
    /** Bytes received and not yet parsed: `buffer[start..end]`. */
    private buffer;
    private start;
    private end;
    push(bytes: Uint8Array): Packet[];
    /** Appends to the pending bytes, growing the buffer by doubling (amortized O(1) a byte). */
    private append;
}
