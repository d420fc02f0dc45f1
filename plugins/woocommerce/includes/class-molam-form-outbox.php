<?php
/**
 * Reports to the control plane, queued in options before anything is sent.
 *
 * @package Molam_Form
 */

defined( 'ABSPATH' ) || exit;

/**
 * The agent's outbox (`docs/agent.md`, Reports: the outbox), kept in three option rows
 * (autoload off) instead of files: a shared host may lose nothing of it across a restore of
 * the files, and the database is where WordPress keeps durable state.
 *
 * - `molam_form_outbox`: reports not yet acknowledged, in the order of a stored sequence
 *   (`molam_form_outbox_seq`, always increasing: a clock step back cannot reorder them);
 * - `molam_form_outbox_results`: answers by idempotency key (for `depends_on`);
 * - `molam_form_outbox_dead`: reports refused for good (4xx other than 408/425/429).
 */
class Molam_Form_Outbox {

	const QUEUE   = 'molam_form_outbox';
	const SEQ     = 'molam_form_outbox_seq';
	const RESULTS = 'molam_form_outbox_results';
	const DEAD    = 'molam_form_outbox_dead';

	/**
	 * Retry delay of the first attempt within a run (seconds); doubles each time.
	 *
	 * @var float
	 */
	public static $base_delay_s = 0.25;

	/**
	 * Read one of the outbox rows fresh from the database (never from a stale cache).
	 *
	 * @param string $name Option name.
	 * @return array
	 */
	private static function read( $name ) {
		wp_cache_delete( $name, 'options' );
		wp_cache_delete( 'notoptions', 'options' );
		$value = get_option( $name, array() );
		return is_array( $value ) ? $value : array();
	}

	/**
	 * Write one of the outbox rows, autoload off.
	 *
	 * @param string $name  Option name.
	 * @param array  $value Value.
	 */
	private static function write( $name, $value ) {
		update_option( $name, $value, false );
	}

	/**
	 * Queue a report once: a key already queued or answered is a no-op (a report re-queued by
	 * recovery after a crash is recorded once). Merchant id and plugin name are added to bodies
	 * of POSTs that are not completions, as the agent does.
	 *
	 * @param string      $method     HTTP method.
	 * @param string      $path       API path, may hold `{rollback_id}` / `{backup_id}`.
	 * @param array       $body       JSON body.
	 * @param string      $key        Idempotency key.
	 * @param string|null $depends_on Key of the report whose answer fills the placeholders.
	 * @return string The key.
	 */
	public static function enqueue( $method, $path, $body, $key, $depends_on = null ) {
		$queue = self::read( self::QUEUE );
		if ( isset( $queue[ $key ] ) || null !== self::result( $key ) ) {
			return $key;
		}
		if ( 'PATCH' !== $method && false === strpos( $path, '/complete' ) ) {
			$body = array_merge(
				array(
					'merchant_id' => Molam_Form_Settings::get( 'merchant_id' ),
					'plugin_name' => Molam_Form_Settings::get( 'plugin_name' ),
				),
				$body
			);
		}
		$seq = (int) get_option( self::SEQ, 0 ) + 1;
		update_option( self::SEQ, $seq, false );
		$queue[ $key ] = array(
			'seq'        => $seq,
			'key'        => $key,
			'method'     => $method,
			'path'       => $path,
			'body'       => $body,
			'depends_on' => $depends_on,
			'created_at' => microtime( true ),
			'attempts'   => 0,
		);
		self::write( self::QUEUE, $queue );
		return $key;
	}

	/**
	 * Reports not yet acknowledged, in sending order.
	 *
	 * @return array<int, array>
	 */
	public static function pending() {
		$queue = array_values( self::read( self::QUEUE ) );
		usort( $queue, fn( $a, $b ) => $a['seq'] <=> $b['seq'] );
		return $queue;
	}

	/**
	 * The control plane's answer to the report `$key`, once acknowledged.
	 *
	 * @param string $key Idempotency key.
	 * @return array|null
	 */
	public static function result( $key ) {
		$results = self::read( self::RESULTS );
		return $results[ $key ]['answer'] ?? null;
	}

	/**
	 * Reports refused for good.
	 *
	 * @return array
	 */
	public static function dead() {
		return self::read( self::DEAD );
	}

	/**
	 * Send what can be sent, in order, up to three attempts with backoff within this run.
	 * Never throws: an unreachable control plane leaves the reports queued for the next run.
	 *
	 * @param int $attempts Attempts within this run.
	 * @return array{sent:int, dead:int, pending:int}
	 */
	public static function flush( $attempts = 3 ) {
		$sent = 0;
		$dead = 0;
		for ( $attempt = 0; $attempt < $attempts; $attempt++ ) {
			$blocked = false;
			foreach ( self::pending() as $entry ) {
				$outcome = self::send( $entry );
				if ( 'sent' === $outcome ) {
					++$sent;
				} elseif ( 'dead' === $outcome ) {
					++$dead;
				} else {
					$blocked = true; // Keep the order: a later report may depend on this one.
					break;
				}
			}
			if ( ! $blocked ) {
				break;
			}
			if ( $attempt + 1 < $attempts ) {
				usleep( (int) ( self::$base_delay_s * ( 2 ** $attempt ) * 1e6 ) );
			}
		}
		return array(
			'sent'    => $sent,
			'dead'    => $dead,
			'pending' => count( self::pending() ),
		);
	}

	/**
	 * Send one report.
	 *
	 * @param array $entry Queued report.
	 * @return string sent | dead | retry
	 */
	private static function send( $entry ) {
		$path = $entry['path'];
		$dep  = $entry['depends_on'] ?? null;
		if ( $dep ) {
			$answer = self::result( $dep );
			if ( null === $answer ) {
				if ( isset( self::read( self::QUEUE )[ $dep ] ) ) {
					return 'retry';
				}
				self::bury( $entry, array( 'error' => "depends on report $dep, which was refused or lost" ) );
				return 'dead';
			}
			foreach ( array( 'rollback_id', 'backup_id', 'id' ) as $field ) {
				$value = $answer[ $field ] ?? null;
				foreach ( $answer as $nested ) {
					if ( null === $value && is_array( $nested ) && isset( $nested[ $field ] ) ) {
						$value = $nested[ $field ];
					}
				}
				if ( null !== $value ) {
					$path = str_replace( '{' . $field . '}', (string) $value, $path );
				}
			}
			if ( false !== strpos( $path, '{' ) ) {
				self::bury( $entry, array( 'error' => "answer to $dep lacks a field for $path" ) );
				return 'dead';
			}
		}
		try {
			$answer = Molam_Form_Http::request( $entry['method'], $path, $entry['body'], array(), $entry['key'] );
		} catch ( Molam_Form_Http_Error $e ) {
			if ( 409 === $e->status && '/complete' === substr( $path, -9 ) ) {
				// Completed before: our first send reached the server, its answer did not reach us.
				$answer = array(
					'ok'                => true,
					'already_completed' => true,
				);
			} elseif ( $e->retryable() ) {
				$queue = self::read( self::QUEUE );
				if ( isset( $queue[ $entry['key'] ] ) ) {
					$queue[ $entry['key'] ]['attempts']   = (int) $entry['attempts'] + 1;
					$queue[ $entry['key'] ]['last_error'] = $e->getMessage();
					self::write( self::QUEUE, $queue );
				}
				return 'retry';
			} else {
				self::bury(
					$entry,
					array(
						'status' => $e->status,
						'answer' => $e->body,
						'error'  => $e->getMessage(),
					)
				);
				return 'dead';
			}
		}
		$results                  = self::read( self::RESULTS );
		$results[ $entry['key'] ] = array(
			'answer' => $answer,
			'at'     => time(),
		);
		self::write( self::RESULTS, $results );
		self::remove( $entry['key'] );
		return 'sent';
	}

	/**
	 * Drop an acknowledged report from the queue.
	 *
	 * @param string $key Key.
	 */
	private static function remove( $key ) {
		$queue = self::read( self::QUEUE );
		unset( $queue[ $key ] );
		self::write( self::QUEUE, $queue );
	}

	/**
	 * Move a refused report to the dead letters.
	 *
	 * @param array $entry Report.
	 * @param array $why   Answer.
	 */
	private static function bury( $entry, $why ) {
		$dead                  = self::read( self::DEAD );
		$dead[ $entry['key'] ] = array_merge( $entry, array( 'refused' => $why ) );
		self::write( self::DEAD, $dead );
		self::remove( $entry['key'] );
	}

	/**
	 * Forget answers older than `$max_age_s` that no queued report waits for.
	 *
	 * @param int $max_age_s Age.
	 */
	public static function prune_results( $max_age_s ) {
		$waiting = array_column( self::pending(), 'depends_on' );
		$results = self::read( self::RESULTS );
		foreach ( $results as $key => $row ) {
			if ( ! in_array( $key, $waiting, true ) && ( $row['at'] ?? 0 ) < time() - $max_age_s ) {
				unset( $results[ $key ] );
			}
		}
		self::write( self::RESULTS, $results );
	}
}
