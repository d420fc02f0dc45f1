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
 *
 * Answers are kept `RESULTS_RETENTION_S` (7 days) and at most `RESULTS_MAX` of them: the
 * WP-cron job prunes them (`Molam_Form_Housekeeping::run()`). Queued reports and dead letters are
 * never pruned.
 */
class Molam_Form_Outbox {

	const QUEUE   = 'molam_form_outbox';
	const SEQ     = 'molam_form_outbox_seq';
	const RESULTS = 'molam_form_outbox_results';
	const DEAD    = 'molam_form_outbox_dead';

	/**
	 * How long an answer is kept (seconds). An answer serves two things: filling the
	 * placeholders of a report that depends on it (kept whatever its age while such a report
	 * waits), and making a report queued again after a crash a no-op. The control plane keeps
	 * its Idempotency-Key records for 7 days too: a report sent again after that is answered
	 * from the server's record while it has one, so keeping answers longer here protects
	 * nothing more. Filter: `molam_form_outbox_results_retention_s` (at least one hour).
	 */
	const RESULTS_RETENTION_S = 7 * 86400;

	/**
	 * At most this many answers are kept, the newest: the row stays small even on a shop that
	 * sends more than usual within the retention (a normal week is about 170 payment-health
	 * hours and a few upgrade reports).
	 */
	const RESULTS_MAX = 500;

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
	 * Forget answers older than `$max_age_s`, then the oldest beyond `RESULTS_MAX`, except
	 * those a queued report waits for (`depends_on`). Only the answers row is touched: a
	 * queued report is never dropped. One read of each row, at most one write.
	 *
	 * @param int        $max_age_s Age.
	 * @param int|null   $now       Unix time.
	 * @param array|null $pending   The queue as `pending()` returned it under the caller's run
	 *                              lock (read here when null).
	 * @return int How many answers were forgotten.
	 */
	public static function prune_results( $max_age_s, $now = null, $pending = null ) {
		$now     = $now ?? time();
		$waiting = array_flip( array_filter( array_map( 'strval', array_column( $pending ?? self::pending(), 'depends_on' ) ) ) );
		$results = self::read( self::RESULTS );
		$before  = count( $results );
		foreach ( $results as $key => $row ) {
			if ( ! isset( $waiting[ (string) $key ] ) && (int) ( $row['at'] ?? 0 ) < $now - $max_age_s ) {
				unset( $results[ $key ] );
			}
		}
		if ( count( $results ) > self::RESULTS_MAX ) {
			// Oldest first (stable for equal times); the ones waited for stay and still count.
			$order = array_keys( $results );
			usort( $order, fn( $a, $b ) => (int) ( $results[ $a ]['at'] ?? 0 ) <=> (int) ( $results[ $b ]['at'] ?? 0 ) );
			$excess = count( $results ) - self::RESULTS_MAX;
			foreach ( $order as $key ) {
				if ( $excess <= 0 ) {
					break;
				}
				if ( ! isset( $waiting[ (string) $key ] ) ) {
					unset( $results[ $key ] );
					--$excess;
				}
			}
		}
		$removed = $before - count( $results );
		if ( $removed > 0 ) {
			self::write( self::RESULTS, $results );
		}
		return $removed;
	}

	/**
	 * The retention of answers in seconds (filterable, never under an hour).
	 *
	 * @return int
	 */
	public static function results_retention_s() {
		return max( 3600, (int) apply_filters( 'molam_form_outbox_results_retention_s', self::RESULTS_RETENTION_S ) );
	}

	/**
	 * Keep the outbox rows out of the options WordPress loads on every page. They are always
	 * written with autoload off, but a row created otherwise (an older build, a database
	 * import, a migration tool re-adding options) keeps its flag until its value changes, and
	 * the queue or dead letters may not change for weeks. One UPDATE that normally matches
	 * nothing; 'no' means "not autoloaded" to every WordPress version (6.6+ writes 'off').
	 *
	 * @return int How many rows were switched off.
	 */
	public static function autoload_off() {
		global $wpdb;
		$names = array( self::QUEUE, self::SEQ, self::RESULTS, self::DEAD );
		$in    = implode( ', ', array_fill( 0, count( $names ), '%s' ) );
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQLPlaceholders.UnfinishedPrepare
		$changed = (int) $wpdb->query( $wpdb->prepare( "UPDATE {$wpdb->options} SET autoload = 'no' WHERE option_name IN ($in) AND autoload IN ('yes', 'on', 'auto', 'auto-on')", $names ) );
		if ( $changed > 0 ) {
			wp_cache_delete( 'alloptions', 'options' );
		}
		return $changed;
	}
}
